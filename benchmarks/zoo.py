"""The attack zoo on the demo victim: every zoo suspect built (or reused) and verified by every protocol.

    .venv/bin/python benchmarks/zoo.py --seeds 0 1 2 [--quick] [--store DIR] [--json zoo.json]

Prints one line per suspect as it finishes (fidelity = top-1 agreement with the victim on the demo's test
split, test accuracy, the p-value of each protocol, seconds) and a summary per zoo entry over the seeds.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import forensics
from forensics.verify import format_p
from forensics.zoo import DEMO_ZOO, demo_zoo_context, run_zoo, summary_rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--quick", action="store_true", help="the reduced demo (what the tests use)")
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write every result as JSON")
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    t0 = time.perf_counter()
    results = []
    for seed in args.seeds:
        audit = forensics.open_audit(forensics.AuditSpec.demo(seed, quick=args.quick), store)
        ctx = demo_zoo_context(audit, quick=args.quick)
        print(f"\n== seed {seed}\n{'suspect':50s} {'kind':9s} {'agree':>5s} {'acc':>5s} {'membership':>10s} "
              f"{'holmes':>8s} {'paper':>8s} {'s':>6s}", flush=True)

        def show(r):
            e = r.verdict.evidence
            print(f"{r.entry.name[:50]:50s} {r.entry.kind:9s} {r.agreement:5.2f} {r.test_accuracy:5.2f} "
                  f"{format_p(e['membership']['p_value']):>10s} {format_p(e.get('holmes', {}).get('p_value')):>8s} "
                  f"{format_p(e.get('paper', {}).get('p_value')):>8s} {r.seconds:6.1f}", flush=True)

        results += run_zoo(ctx, DEMO_ZOO, [seed], on_result=show)
    print(f"\n== summary over seeds {args.seeds} ({time.perf_counter() - t0:.0f} s)")
    for row in summary_rows(results):
        print(f"{row['name'][:50]:50s} {row['kind']:9s} agreement {row['agreement']:.2f}  membership median p "
              f"{format_p(row['membership_median_p'])} ({row['membership_below_0.01']} below 0.01)")
    if args.json:
        args.json.write_text(json.dumps([r.to_dict() for r in results], indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
