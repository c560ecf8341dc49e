"""The benchmark: every zoo entry for every seed, verified by every protocol and every peer baseline on exactly the
same answers (:func:`run_bench`), and the query-budget curve (each protocol re-run on random subsets of what it
asks, :func:`budget_view`).  :mod:`.summary` turns a :class:`BenchResult` into tables and figures.

    result = run_bench(audits, contexts, entries, seeds)
    write_bench(result, out_dir)                 # forensics.zoo.summary: bench.json, bench.md, bench.html
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..audit.opened import Audit
from ..errors import ConfigError
from ..method.shadows import MembershipDesign
from ..protocols.baselines import victim_mistakes
from ..protocols.registry import VerdictProtocol, get_protocol, list_protocols
from ..runtime.progress import Progress, StagePlan, emit
from .entries import ZooContext, ZooEntry, ZooResult, check_unique, verify_entry

ALPHAS = (0.01, 0.001, 0.05)             # the levels power and false positives are reported at


BUDGETS = (100, 200, 500, 1000, 2000)     # query budgets of the curve (each below a protocol's full set)


# the zoo entries (ids) of `bench --small` and of the stress test's default pick
SMALL_ZOO = ("direct-copy", "fine-tune", "api-top1-fine-tune", "distill-t4", "innocent-victim-recipe",
             "innocent-other-seed")
# the stress test's default includes the families the test is weakest on (heavy fine-tunes, pruning with a full
# fine-tune, a student of another architecture from scratch), so "no evidence" is read against them too
STRESS_ZOO = ("direct-copy", "fine-tune-light", "fine-tune", "fine-tune-heavy", "fine-tune-augmented",
              "api-top1-fine-tune", "prune-20", "prune-40-fine-tune", "int8", "weight-noise", "distill-t4",
              "label-extraction", "api-top1-label-extraction", "distill-resnet18-scratch", "innocent-victim-recipe",
              "innocent-other-seed", "innocent-half-data", "innocent-12-epochs", "innocent-thief-data")


def budget_view(audit: Audit, budget: int, on: str = "both") -> Audit:
    """The audit as if a protocol had asked only ``budget`` queries, drawn at random independently of any suspect
    (so every p-value stays valid): ``on="both"`` half members and half controls (the membership test),
    ``"controls"`` controls only, ``"mistakes"`` controls the victim gets wrong (see ``VerdictProtocol.budget_on``)."""
    rng = np.random.default_rng([audit.config.seed, budget, 7])
    memo = {k: v for k, v in audit.memo.items() if k in ("victim_and_references", "lineage")}
    d = audit.membership
    if on == "both":
        return replace(audit, membership=d.subsample(budget, rng), memo=memo)
    if on not in ("controls", "mistakes"):
        raise ConfigError(f"unknown budget target {on!r}; use 'both', 'controls' or 'mistakes'")
    rows = victim_mistakes(audit) if on == "mistakes" else np.arange(len(d.control_rows))
    pick = np.sort(rng.permutation(rows)[:budget])
    design = MembershipDesign(d.member_rows, d.control_rows[pick], d.reference_loss_members,
                              d.reference_loss_controls[pick])
    return replace(audit, membership=design, memo=memo)


def budget_protocols() -> list[VerdictProtocol]:
    """The protocols whose queries a budget thins out; the Holmes protocols ask D_s (fixed) and Dataset
    Inference its own walks."""
    return [p for p in list_protocols(baselines=True) if p.budget_on]


def budget_curve(audit: Audit, result: ZooResult, budgets: tuple[int, ...] = BUDGETS) -> dict[str, dict[int, float]]:
    """p-value of each budget protocol at each budget below its full query count."""
    out: dict[str, dict[int, float]] = {}
    answers = result.answers
    if answers is None:
        raise ConfigError(f"{result.entry.title}: the zoo result keeps no answers to re-run protocols on")
    label_only = answers.ndim == 1
    for p in budget_protocols():
        evidence = result.verdict.evidence.get(p.name)
        if evidence is None:  # it could not run on these answers
            continue
        full = p.query_count(evidence)
        for b in budgets:
            if b < full:
                view = budget_view(audit, b, p.budget_on)
                out.setdefault(p.name, {})[b] = float(p.run(view, answers, label_only, None)[0]["p_value"])
    return out


@dataclass
class BenchResult:
    results: list[ZooResult]
    curves: list[dict[str, dict[int, float]]]        # per result: protocol -> budget -> p
    full_queries: dict[str, int]                     # protocol -> queries it asked at full budget
    times: dict[str, float]                          # seconds per stage
    meta: dict[str, Any] = field(default_factory=dict)

    def protocols(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.results:
            seen.update(dict.fromkeys(r.verdict.evidence))
        return list(seen)


def run_bench(audits: dict[int, Audit], contexts: dict[int, ZooContext], entries: list[ZooEntry],
              seeds: list[int], *, baselines: bool = True, budgets: tuple[int, ...] = BUDGETS,
              progress: Progress | None = None, on_result: Callable[[ZooResult], None] | None = None,
              times: dict[str, float] | None = None) -> BenchResult:
    """Every entry for every seed against the audit of that seed; ``times`` may carry earlier stages' seconds."""
    check_unique(entries)
    times = dict(times or {})
    results: list[ZooResult] = []
    curves: list[dict[str, dict[int, float]]] = []
    full_queries: dict[str, int] = {}

    def key(entry: ZooEntry, seed: int) -> str:
        return f"zoo:{seed}:{entry.id}"

    if progress is not None:
        progress(StagePlan([(key(e, seed), e.title + (f" (run {i + 1})" if len(seeds) > 1 else ""))
                            for i, seed in enumerate(seeds) for e in entries],
                           costs={key(e, seed): e.expected_cost(contexts[seed].recipe) for seed in seeds
                                  for e in entries}))
    for seed in seeds:
        for entry in entries:
            emit(progress, key(entry, seed), "start")
            r = verify_entry(entry, contexts[seed], seed, baselines=baselines, progress=progress)
            t = time.perf_counter()
            curves.append(budget_curve(audits[seed], r, budgets))
            r.times["budget curve"] = time.perf_counter() - t
            for k, v in r.times.items():
                times[k] = times.get(k, 0.0) + v
            for name, e in r.verdict.evidence.items():
                full_queries[name] = max(full_queries.get(name, 0), get_protocol(name).query_count(e))
            results.append(r)
            emit(progress, key(entry, seed), "done", f"p = {r.verdict.p_value:.2g}")
            if on_result is not None:
                on_result(r)
    return BenchResult(results, curves, full_queries, times)
