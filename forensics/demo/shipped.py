"""The full demo's victim and simulated suspects, shipped with the package as the tensors they changed.

Training the demo's victim and its five trained suspects takes minutes on a CPU (1,739 optimisation steps of the
network's last stage); a first demo should show a verdict sooner.  The package therefore ships those six runs, each
as the tensors that differ from the model it started from (the last stage and the head, ~4 MB each, safetensors),
with the trained model's fingerprint and its training history.  :func:`forensics.engine.stored.train_stored` asks
:func:`provide` before it trains: a shipped run is used only for the exact artifact key it was made under (same
start weights, data, targets, recipe and precision) and only if the rebuilt weights have the recorded fingerprint;
anything else (another seed or recipe, the reduced demo, a GPU's bf16, ``FORENSICS_DEMO_SHIPPED=0``) trains as
before.  The audit's own models (the shadows, the membership reference, the meta-classifier) are never shipped:
they train on every first run, as they would for a user's own victim.

``scripts/make_demo_weights.py`` makes the files (it runs the full demo with shipping off and exports the runs).
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..audit.spec import AuditSpec
from ..engine.stored import ShippedRun, register_shipped
from ..runtime import settings
from .assets import INPUT_SIZE, demo_train

SHIPPED_DIR = Path(__file__).resolve().parent / "data" / "shipped"
MANIFEST = "manifest.json"
#: the stages whose runs the demo ships: the victim and the attacks that make its trained suspects
STAGES = ("demo_victim", "attack_fine_tune", "attack_distill", "attack_label_extraction", "innocent")


@lru_cache(maxsize=1)
def manifest() -> dict[str, dict[str, Any]]:
    """``"stage/key"`` -> the shipped run's entry (file, fingerprint, history, label); empty when none is shipped."""
    return {f"{r['stage']}/{r['key']}": r for r in _runs() if r.get("stage") in STAGES}


@lru_cache(maxsize=1)
def _runs() -> tuple[dict[str, Any], ...]:
    path = SHIPPED_DIR / MANIFEST
    if not path.is_file():
        return ()
    data = json.loads(path.read_text())
    return tuple({**r, "demo_seed": data.get("demo_seed", 0)} for r in data.get("runs", []))


def provide(stage: str, key: str) -> ShippedRun | None:
    """The shipped run for ``stage``/``key``, or None (see the module's docstring)."""
    if stage not in STAGES or not settings.current().demo_shipped:
        return None
    entry = manifest().get(f"{stage}/{key}")
    if entry is None:
        return None
    from safetensors.torch import load_file

    name = Path(entry["file"]).name  # a bare file name in the package's own folder
    return ShippedRun(load_file(SHIPPED_DIR / name), entry["fingerprint"], entry.get("history", {}))


def covers(spec: AuditSpec) -> bool:
    """Whether the runs of the demo audit ``spec`` are likely shipped: the full demo with its own seed, foundation,
    input size and recipe, on the CPU, shipping on (a progress plan's cost estimate; whether a run is shipped is only
    known from its key, when it is asked for)."""
    from ..engine.engine import resolve_device

    if not manifest() or not settings.current().demo_shipped or spec.quick:
        return False
    seeds = {r.get("demo_seed", 0) for r in _runs()}
    return (spec.config.seed in seeds and spec.foundation.strip() == "demo:foundation"
            and spec.input_size in (None, INPUT_SIZE)
            and replace(spec.config.train, seed=0) == replace(demo_train(False), seed=0)
            and resolve_device(spec.device).type == "cpu")


register_shipped(provide)
