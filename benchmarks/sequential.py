"""Queries an API audit pays for: the sequential test (anytime-valid) against the fixed full query set, on the attack
zoo's suspects of the demo victims, and its exact-null check under optional stopping.

    .venv/bin/python benchmarks/sequential.py [--victims lite0 lite1] [--seeds 0] [--null-runs 2000] [--store DIR]
                                              [--entries ID ...] [--batch 10] [--json out.json]

For every zoo suspect (built or reused from the store: run `bench` first and this costs only inference) its answers
through its own API format (logits, top-1 label, top-3, rounded probabilities, temperature) are read in the
sequential test's order (member-control pairs of equal difficulty, hardest first), ``--batch`` pairs a round as a live
API audit asks them; the queries until the decision are counted.  Every suspect is also read through a top-1 label
API (the cheapest answer an API gives).  Thefts are counted as the benchmark counts them (derived from the victim and
useful), by what survives of the victim: its weights, or only its outputs.

The exact-null check: the audit's held-out pool split at random into pseudo-members and pseudo-controls (H0 true by
construction), the sequential protocol run on the whole stream with a stop at the first crossing (the strictest
optional stopping), for every suspect's answers: P(p <= alpha) must stay at or below alpha.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import forensics
from forensics.api.audit import BATCH_PAIRS
from forensics.audit.answers import format_answers
from forensics.demo.assets import demo_spec
from forensics.demo.zoo import demo_zoo_context
from forensics.method import sequential as seq
from forensics.protocols import exact_null_pvalues, get_protocol
from forensics.protocols.sequential import sequential_design
from forensics.zoo.attacks import fidelity
from forensics.zoo.bench import STRESS_ZOO
from forensics.zoo.entries import USEFUL, build_suspect, select_zoo_entries, what_survives

#: the zoo entries measured by default: the stress test's standard set and the other answer formats and distillations
DEFAULT_ENTRIES = (*STRESS_ZOO, "distill-t1", "distill-t10", "api-temperature3-distill", "api-top3-fine-tune",
                   "api-probs2-fine-tune", "innocent-victim-seed", "innocent-augmented")


def queries_until_decision(audit, answers: np.ndarray, batch: int) -> seq.SimulatedRun:
    design = sequential_design(audit)
    label_only = answers.ndim == 1
    gains = design.gains(answers[design.member_pos], answers[design.control_pos])
    return seq.simulate(gains, audit.config.alpha, design.expected(label_only), batch=batch)


def _stats(xs: list[int]) -> str:
    if not xs:
        return "-"
    return f"median {np.median(xs):.0f}, 90th percentile {np.percentile(xs, 90):.0f} (n = {len(xs)})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victims", nargs="+", default=["lite0", "lite1"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--entries", nargs="+", default=None)
    ap.add_argument("--batch", type=int, default=BATCH_PAIRS, help="pairs asked per round (a live audit's --batch)")
    ap.add_argument("--null-runs", type=int, default=2000, help="exact-null runs in all (spread over the suspects)")
    ap.add_argument("--store", default=None)
    ap.add_argument("--json", type=Path, help="write every row as JSON")
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    entries = select_zoo_entries(list(args.entries or DEFAULT_ENTRIES))
    rows, nulls = [], []
    t0 = time.perf_counter()
    for victim in args.victims:
        for seed in args.seeds:
            a = forensics.open_audit(demo_spec(seed, victim=victim), store)
            ctx = demo_zoo_context(a)
            full = len(sequential_design(a).positions)
            fixed = len(a.membership.member_rows) + len(a.membership.control_rows)
            per_suspect = max(1, args.null_runs // (len(entries) * len(args.victims) * len(args.seeds)))
            print(f"== victim {victim}, seed {seed}: {full // 2} pairs; the fixed membership test asks {fixed} "
                  f"queries (the whole query set {len(a.queries)})", flush=True)
            for entry in entries:
                model = build_suspect(entry, ctx, seed)
                z = a.engine.logits(model, a.queries.images)
                fid = fidelity(a.engine, a.victim, model, ctx.test)
                survives = what_survives(entry, ctx)
                theft = (entry.kind == "stolen" and survives != "nothing"
                         and fid["test_accuracy"] >= USEFUL * ctx.victim_test_accuracy)
                role = "theft" if theft else ("innocent" if entry.kind == "innocent" else "other")
                for api in sorted({entry.answers, "top1"}):
                    answers = format_answers(z, api)
                    run = queries_until_decision(a, answers, args.batch)
                    fixed_p = get_protocol("membership").run(a, answers, answers.ndim == 1, None)[0]["p_value"]
                    rows.append({"victim": victim, "seed": seed, "id": entry.id, "kind": entry.kind, "role": role,
                                 "survives": survives, "api": api, "served": api == entry.answers,
                                 "queries": run.queries, "decision": run.decision,
                                 "p_value": run.p_value, "fixed_queries": fixed, "fixed_p": fixed_p})
                    print(f"  {entry.id[:34]:34s} {api:12s} {role:8s} {survives:8s} {run.queries:5d} queries -> "
                          f"{run.decision!s:9s} p = {run.p_value:.1e} | fixed set {fixed} queries p = "
                          f"{fixed_p:.1e}", flush=True)
                nulls.append(exact_null_pvalues(a, [format_answers(z, entry.answers)], protocol="sequential",
                                                draws=per_suspect, seed=1000 * seed + len(nulls)).ravel())
    print(f"\n== {len(rows)} audits in {time.perf_counter() - t0:.0f} s; batch {args.batch} pairs "
          f"({2 * args.batch} queries) a round")
    for survives in ("weights", "outputs"):
        for api in ("as served", "top1"):
            sel = [r for r in rows if r["role"] == "theft" and r["survives"] == survives
                   and (r["api"] == "top1" if api == "top1" else r["served"])]
            decided = [r["queries"] for r in sel if r["decision"] == "evidence"]
            caught_fixed = sum(r["fixed_p"] < 0.01 for r in sel)
            print(f"thefts where the victim's {survives} survive, answers {api}: caught {len(decided)}/{len(sel)} "
                  f"(the fixed set catches {caught_fixed}/{len(sel)}); queries until 'evidence': {_stats(decided)}; "
                  f"all, counting a miss as its whole budget: {_stats([r['queries'] for r in sel])}")
    inn = [r for r in rows if r["role"] == "innocent" and r["served"]]
    print(f"innocents: accused {sum(r['decision'] == 'evidence' for r in inn)}/{len(inn)}; stopped for futility "
          f"{sum(r['decision'] == 'futility' for r in inn)}/{len(inn)}; queries until stopping: "
          f"{_stats([r['queries'] for r in inn])}")
    p = np.concatenate(nulls) if nulls else np.zeros(0)
    for alpha in (0.05, 0.01, 0.001):
        print(f"exact null, {len(p)} runs with optional stopping: P(p <= {alpha}) = {np.mean(p <= alpha):.4f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "null_p": p.tolist()}, indent=1))


if __name__ == "__main__":
    main()
