"""``holmes-forensics bench`` (the attack zoo against every protocol and peer baseline, for the demo victim or a
record's) and ``stress`` (would this audit catch these thefts of my own victim?)."""
from __future__ import annotations

import sys
import time

from ..audit.verdict import format_p
from ..demo.zoo import demo_contexts, demo_meta, fan_out_zoo
from ..errors import ConfigError
from ..protocols.registry import list_protocols
from ..zoo.bench import BUDGETS, SMALL_ZOO, STRESS_ZOO, run_bench
from ..zoo.entries import select_zoo_entries
from ..zoo.stress import load_stress_data, require_stress_data, stress_summary, stress_test
from ..zoo.summary import write_bench
from .common import ConsoleProgress, machine_description, spec_and_record


def _bench(args, stress: bool) -> int:
    import datetime

    from ..audit.build import open_audit
    from ..runtime.store import ArtifactStore

    store = ArtifactStore(args.store) if args.store else ArtifactStore()
    progress = ConsoleProgress(args.quiet)
    seeds = args.seeds or ([0] if args.small else [0, 1, 2])
    default = STRESS_ZOO if stress else (SMALL_ZOO if args.small else None)
    entries = select_zoo_entries(args.attacks or default)
    t = time.perf_counter()
    if getattr(args, "ray", None) and args.record:
        raise ConfigError("bench --ray builds the demo's zoo; a benchmark of an audit record (--record) runs in "
                          "this process: drop --ray")
    if args.record:
        require_stress_data(args.thief_data, args.innocent_data)
        spec = spec_and_record(args.record)[0]
        spec.device = args.device
        audit = open_audit(spec, store, progress)
        thief, innocent, test = load_stress_data(audit, args.thief_data, args.innocent_data, args.test_data)
        audits = contexts = None
        meta = {"victim": audit.victim.source, "seeds": seeds, "record": str(args.record)}
    else:
        if stress:
            raise ConfigError("give --record AUDIT.json: the stress test simulates thefts of the victim of that audit "
                              "(use `bench` for the demo victim)")
        audits, contexts = demo_contexts(seeds, store, quick=args.small, progress=progress)
        meta = demo_meta(seeds, args.small)
    meta.update(date=datetime.datetime.now().isoformat(timespec="seconds"), machine=machine_description(),
                entries=[e.id for e in entries])
    times = {"audits": time.perf_counter() - t}
    def header():
        if not args.quiet:
            print(f"\n{'suspect':46s} {'kind':8s} {'agree':>5s} " + " ".join(
                f"{p.name[:10]:>10s}" for p in list_protocols(baselines=not args.no_baselines)), flush=True)

    def show(r):
        e = r.verdict.evidence
        print(f"{r.entry.title[:38] + f' #{r.seed}':46s} {r.entry.kind:8s} {r.agreement:5.2f} " + " ".join(
            f"{format_p(e.get(p.name, {}).get('p_value')):>10s}"
            for p in list_protocols(baselines=not args.no_baselines)), flush=True)

    if audits is None:
        header()
        result = stress_test(audit, thief, innocent, entries, seeds, test=test,
                               other_foundation=args.other_foundation, baselines=not args.no_baselines,
                               budgets=() if stress else BUDGETS,
                               on_result=None if args.quiet else show)
        for why in result.meta["skipped"]:
            print(f"skipped {why}", file=sys.stderr)
        result.times["audits"] = times["audits"]
    else:
        if getattr(args, "ray", None):
            t_ray = time.perf_counter()
            failed = fan_out_zoo(entries, seeds, quick=args.small, store_root=store.root.resolve(),
                                   baselines=not args.no_baselines, address=args.ray, workers=args.workers,
                                   on_done=None if args.quiet else lambda o: print(
                                       f"  built {o.item[1]} #{o.item[0]} on a Ray worker in {o.seconds:.1f} s"
                                       + (f" - FAILED: {o.error} (built here instead)" if o.error else ""),
                                       flush=True))
            times["zoo on Ray"] = time.perf_counter() - t_ray
            for why in failed:
                print(f"a Ray task failed, built in this process instead: {why}", file=sys.stderr)
        header()
        result = run_bench(audits, contexts, entries, seeds, baselines=not args.no_baselines,
                             on_result=None if args.quiet else show, times=times)
    result.times["total"] = time.perf_counter() - t
    result.meta = {**result.meta, **meta}
    paths = write_bench(result, args.out)
    print("\n" + paths["markdown"].read_text())
    if stress:
        print(stress_summary(result, spec_and_record(args.record)[1], alpha=audit.config.alpha))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_bench(args) -> int:
    return _bench(args, stress=False)


def cmd_stress(args) -> int:
    return _bench(args, stress=True)
