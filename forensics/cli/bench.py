"""``holmes-forensics bench`` (the attack zoo against every protocol and peer baseline, for the demo victim or a
record's) and ``stress`` (would this audit catch these thefts of my own victim?)."""
from __future__ import annotations

import argparse
import datetime
import sys
import time
from dataclasses import replace
from typing import Any

from ..audit.build import open_audit
from ..audit.verdict import format_p
from ..demo.zoo import demo_contexts, demo_meta, fan_out_zoo
from ..errors import ConfigError
from ..protocols.registry import list_protocols
from ..runtime.fanout import Outcome
from ..runtime.store import ArtifactStore
from ..zoo.bench import BUDGETS, SMALL_ZOO, STRESS_ZOO, BenchResult, run_bench
from ..zoo.entries import ZooEntry, ZooResult, select_zoo_entries
from ..zoo.stress import load_stress_data, require_stress_data, stress_summary, stress_test
from ..zoo.summary import write_bench
from .common import ConsoleProgress, machine_description, spec_and_record


class _Table:
    """The console's running table: a header, then a row per suspect as it is verified."""

    def __init__(self, args: argparse.Namespace):
        self.quiet = args.quiet
        self.protocols = list_protocols(baselines=not args.no_baselines)

    def header(self) -> None:
        if not self.quiet:
            print(f"\n{'suspect':46s} {'kind':8s} {'agree':>5s} " + " ".join(
                f"{p.name[:10]:>10s}" for p in self.protocols), flush=True)

    def row(self, r: ZooResult) -> None:
        e = r.verdict.evidence
        print(f"{r.entry.title[:38] + f' #{r.seed}':46s} {r.entry.kind:8s} {r.agreement:5.2f} " + " ".join(
            f"{format_p(e.get(p.name, {}).get('p_value')):>10s}" for p in self.protocols), flush=True)


def _stress_record(args: argparse.Namespace, store: ArtifactStore, entries: list[ZooEntry], seeds: list[int],
                   stress: bool) -> tuple[BenchResult, dict[str, Any], float]:
    """The zoo against the victim of ``--record`` (the stress test, or ``bench --record``)."""
    if getattr(args, "ray", None):
        raise ConfigError("bench --ray builds the demo's zoo; a benchmark of an audit record (--record) runs in "
                          "this process: drop --ray")
    require_stress_data(args.thief_data, args.innocent_data)
    t = time.perf_counter()
    spec = spec_and_record(args.record, getattr(args, "store", None))[0]
    spec.device = args.device
    if args.lineage_replicas:
        spec.config = replace(spec.config, lineage_replicas=args.lineage_replicas, protocol="combined")
    if args.reference_pairs:
        spec.config = replace(spec.config, reference_pairs=args.reference_pairs)
    audit = open_audit(spec, store, ConsoleProgress(args.quiet))
    thief, innocent, test = load_stress_data(audit, args.thief_data, args.innocent_data, args.test_data)
    opened = time.perf_counter() - t
    table = _Table(args)
    table.header()
    result = stress_test(audit, thief, innocent, entries, seeds, test=test, other_foundation=args.other_foundation,
                         baselines=not args.no_baselines, budgets=() if stress else BUDGETS,
                         on_result=None if args.quiet else table.row)
    for why in result.meta["skipped"]:
        print(f"skipped {why}", file=sys.stderr)
    result.times["audits"] = opened
    return result, {"victim": audit.victim.source, "seeds": seeds, "record": str(args.record)}, audit.config.alpha


def _bench_demo(args: argparse.Namespace, store: ArtifactStore, entries: list[ZooEntry],
                seeds: list[int]) -> tuple[BenchResult, dict[str, Any]]:
    """The zoo against the demo victim of each seed (its suspects built on Ray workers first with ``--ray``)."""
    t = time.perf_counter()
    victim = getattr(args, "victim", None) or "lite0"
    audits, contexts = demo_contexts(seeds, store, quick=args.small, progress=ConsoleProgress(args.quiet),
                                     victim=victim, lineage_replicas=args.lineage_replicas or 0,
                                     reference_pairs=args.reference_pairs or 0)
    times = {"audits": time.perf_counter() - t}
    if getattr(args, "ray", None):
        def built(o: Outcome) -> None:
            print(f"  built {o.item[1]} #{o.item[0]} on a Ray worker in {o.seconds:.1f} s"
                  + (f" - FAILED: {o.error} (built here instead)" if o.error else ""), flush=True)

        t_ray = time.perf_counter()
        failed = fan_out_zoo(entries, seeds, quick=args.small, store_root=store.root.resolve(),
                             baselines=not args.no_baselines, address=args.ray, workers=args.workers,
                             on_done=None if args.quiet else built, victim=victim,
                             lineage_replicas=args.lineage_replicas or 0, reference_pairs=args.reference_pairs or 0)
        times["zoo on Ray"] = time.perf_counter() - t_ray
        for why in failed:
            print(f"a Ray task failed, built in this process instead: {why}", file=sys.stderr)
    table = _Table(args)
    table.header()
    result = run_bench(audits, contexts, entries, seeds, baselines=not args.no_baselines,
                       on_result=None if args.quiet else table.row, times=times)
    return result, demo_meta(seeds, args.small, victim)


def _bench(args: argparse.Namespace, stress: bool) -> int:
    if stress and not args.record:
        raise ConfigError("give --record AUDIT.json: the stress test simulates thefts of the victim of that audit "
                          "(use `bench` for the demo victim)")
    store = ArtifactStore(args.store) if args.store else ArtifactStore()
    seeds = args.seeds or ([0] if args.small else [0, 1, 2])
    default = STRESS_ZOO if stress else (SMALL_ZOO if args.small else None)
    entries = select_zoo_entries(args.attacks or default)
    t = time.perf_counter()
    alpha = None
    if args.record:
        result, meta, alpha = _stress_record(args, store, entries, seeds, stress)
    else:
        result, meta = _bench_demo(args, store, entries, seeds)
    meta.update(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=machine_description(),
                entries=[e.id for e in entries])
    result.times["total"] = time.perf_counter() - t
    result.meta = {**result.meta, **meta}
    paths = write_bench(result, args.out)
    print("\n" + paths["markdown"].read_text())
    if stress and alpha is not None:
        print(stress_summary(result, spec_and_record(args.record, getattr(args, "store", None))[1], alpha=alpha))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    return _bench(args, stress=False)


def cmd_stress(args: argparse.Namespace) -> int:
    return _bench(args, stress=True)
