"""The attack zoo on the demo victim: its zoo context (the demo's data splits, the victim's recipe, EfficientNet-Lite1
as the other foundation, the test split for fidelity), the demo's audits per seed, and the zoo built as Ray tasks
(``holmes-forensics bench --ray``)."""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..audit.opened import Audit
from ..runtime.progress import Progress
from ..zoo.entries import ZooContext, ZooEntry, get_zoo_entry, verify_entry
from . import assets as demo_assets
from .assets import demo_spec


def demo_zoo_context(audit: Audit, *, quick: bool = False) -> ZooContext:
    """The demo's zoo context: its data splits, the victim's recipe (full length: the zoo caps its own epochs when
    ``quick``), the other demo foundation (EfficientNet-Lite1 for the Lite0 victim, Lite0 for the Lite1 one), and the
    demo's test split for fidelity."""
    variant = next((v for v in demo_assets.DEMO_VICTIMS.values() if v.foundation == audit.spec.foundation.strip()),
                   demo_assets.DEMO_VICTIMS["lite0"])
    return ZooContext(audit, demo_assets.zoo_data(quick), variant.train, variant.other_foundation,
                      demo_assets.demo_split("test", quick), max_epochs=3 if quick else None)


def demo_contexts(seeds: list[int], store, *, quick: bool = False, progress: Progress | None = None,
                  victim: str = "lite0", lineage_replicas: int = 0, reference_pairs: int = 0
                  ) -> tuple[dict[int, Audit], dict[int, ZooContext]]:
    """The demo's audits (one per seed) and zoo contexts, for one of the demo's victims (with ``lineage_replicas``,
    the lineage test and the combined verdict too; with ``reference_pairs``, the membership test on all of D)."""
    from ..audit.build import open_audit

    specs = {s: demo_spec(s, quick=quick, victim=victim) for s in seeds}
    for spec in specs.values():
        spec.config = replace(spec.config, reference_pairs=reference_pairs, lineage_replicas=lineage_replicas,
                              protocol="combined" if lineage_replicas else spec.config.protocol)
    audits = {s: open_audit(spec, store, progress=progress) for s, spec in specs.items()}
    return audits, {s: demo_zoo_context(a, quick=quick) for s, a in audits.items()}


def demo_meta(seeds: list[int], quick: bool, victim: str = "lite0") -> dict[str, Any]:
    what = demo_assets.demo_victim_variant(victim).title
    return {"victim": f"the demo victim {victim} ({what}, on the demo data" + (", reduced)" if quick else ")"),
            "seeds": seeds, "data": {k: len(v) for k, v in demo_assets.zoo_data(quick).items()}}


# -- the zoo on a Ray cluster --------------------------------------------------------------------------------------
_CONTEXTS: dict[str, tuple[dict[int, Audit], dict[int, ZooContext]]] = {}  # per worker process


def build_entry_in_worker(seed: int, entry_id: str, quick: bool, store_root: str, baselines: bool,
                          victim: str = "lite0", lineage_replicas: int = 0, reference_pairs: int = 0
                          ) -> dict[str, Any]:
    """A Ray task: build and verify one zoo entry of the demo against the audit of ``seed`` (the bench's design: its
    replicas and references are read from the shared store), through the shared store (its suspect's training,
    logits and answers land there); returns its seconds and p-values."""
    from ..runtime.store import ArtifactStore

    key = json.dumps([seed, quick, store_root, victim, lineage_replicas, reference_pairs])
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = demo_contexts([seed], ArtifactStore(store_root), quick=quick, victim=victim,
                                       lineage_replicas=lineage_replicas, reference_pairs=reference_pairs)
    r = verify_entry(get_zoo_entry(entry_id), _CONTEXTS[key][1][seed], seed, baselines=baselines)
    return {"times": r.times, "p_values": {p: e.get("p_value") for p, e in r.verdict.evidence.items()}}


def fan_out_zoo(entries: list[ZooEntry], seeds: list[int], *, quick: bool, store_root: str | Path, baselines: bool,
                address: str | None, workers: int | None = None,
                on_done: Callable[[Any], None] | None = None, victim: str = "lite0", lineage_replicas: int = 0,
                reference_pairs: int = 0) -> list[str]:
    """Build every (seed, entry) of the demo's zoo as Ray tasks (:mod:`forensics.runtime.fanout`), so that the
    in-process :func:`~forensics.zoo.bench.run_bench` afterwards only reads the store; returns the errors of tasks
    that failed (they are then built in process)."""
    from ..runtime.fanout import ray_map

    items = [(s, e.id) for s in seeds for e in entries]
    errors = []
    for o in ray_map(build_entry_in_worker, items,
                     lambda it: (it[0], it[1], quick, str(store_root), baselines, victim, lineage_replicas,
                                 reference_pairs),
                     address=address, workers=workers):
        if o.error:
            errors.append(f"{o.item[1]} #{o.item[0]}: {o.error}")
        if on_done is not None:
            on_done(o)
    return errors
