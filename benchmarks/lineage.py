"""The lineage test (``forensics.method.lineage``) on the demo victim: exact nulls, innocents and thefts.

    .venv/bin/python benchmarks/lineage.py --seeds 0 [--replicas 19] [--store DIR] [--entries ID ...]
        [--victim lite0|lite1] [--quick] [--nulls-only] [--null-replicas K]

For each audit seed it opens the demo audit with ``lineage_replicas`` replicas (trained once, then read from the
store) and prints:

* **exact nulls**: each of the K + 1 runs of the victim's recipe (the victim and its K replicas) in turn plays the
  victim, the other K are its replicas, and every model that is independent of it by construction is a suspect: the
  other runs (then left out of the replicas too) and the zoo's innocents of the victim's architecture.  H0 is true
  in every one of these tests; P(p < alpha) must stay <= alpha (tests sharing a pseudo-victim are correlated, so
  the binomial bound printed beside is optimistic);
* **the zoo**: every entry of the victim's architecture with its lineage p (the t prediction and the exact rank p),
  its membership p and the combined (Bonferroni) p, by role (theft, failed theft, control, innocent).

``--nulls-only`` skips the zoo (the exact nulls then pair the runs of the recipe with each other only): with the
reduced demo (``--quick``, 600 private images, 3 epochs) many replicas are cheap, and 72 replicas give 73 x 72 =
5,256 exact-null tests of the registered lineage test.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

import forensics
from forensics.audit.verify import lineage_of
from forensics.demo.zoo import demo_zoo_context
from forensics.method.lineage import correlation, lineage_pvalues, trained_change
from forensics.protocols.builtin import combine_evidence
from forensics.zoo.entries import build_suspect, list_zoo_entries, select_zoo_entries, what_survives

ALPHAS = (0.05, 0.01, 0.001)


def exact_nulls(runs: np.ndarray, innocents: dict[str, np.ndarray], replicas: int | None = None,
                seed: int = 0) -> np.ndarray:
    """p-values of every (pseudo-victim, independent suspect) pair among ``runs`` (rows: victim and replicas).
    ``replicas``: each test compares with that many of the other runs, drawn at random (an audit's K), instead of
    all of them."""
    k = len(runs)
    rng = np.random.default_rng([seed, 31])
    corr = np.array([[correlation(a, b) for b in runs] for a in runs])
    inn = {n: np.array([correlation(d, r) for r in runs]) for n, d in innocents.items()}

    def pick(rest: list[int]) -> list[int]:
        return rest if replicas is None or replicas >= len(rest) else sorted(rng.choice(rest, replicas, False))

    ps = []
    for j in range(k):  # pseudo-victim
        for i in range(k):
            if i != j:
                rest = pick([m for m in range(k) if m not in (i, j)])
                ps.append(lineage_pvalues(corr[i, j], corr[i, rest])["p_value"])
        for c in inn.values():
            rest = pick([m for m in range(k) if m != j])
            ps.append(lineage_pvalues(c[j], c[rest])["p_value"])
    return np.array(ps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--replicas", type=int, default=19)
    ap.add_argument("--store", default=None)
    ap.add_argument("--entries", nargs="+", default=None)
    ap.add_argument("--victim", default="lite0", help="which demo victim (lite0: the demo's own; lite1)")
    ap.add_argument("--quick", action="store_true", help="the reduced demo")
    ap.add_argument("--null-replicas", type=int, default=None,
                    help="each exact-null test compares with K of the other runs drawn at random (default: all)")
    ap.add_argument("--nulls-only", action="store_true", help="only the exact nulls among the runs of the recipe")
    args = ap.parse_args()
    from scipy import stats

    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    entries = ([] if args.nulls_only else select_zoo_entries(args.entries) if args.entries
               else list_zoo_entries())
    all_null = []
    for seed in args.seeds:
        spec = forensics.demo_spec(seed, victim=args.victim, quick=args.quick)
        spec.config = replace(spec.config, lineage_replicas=args.replicas)
        t0 = time.perf_counter()
        a = forensics.open_audit(spec, store)
        ref = lineage_of(a)
        assert ref is not None
        t_rep = time.perf_counter() - t0
        ctx = demo_zoo_context(a, quick=args.quick)
        print(f"\n== seed {seed}: {len(ref.names)} tensors, {ref.victim.size:,} trained weights; {args.replicas} "
              f"replicas ({t_rep:.0f} s with the audit)", flush=True)
        print(f"{'suspect':56s} {'role':9s} {'corr V':>7s} {'max R':>6s} {'t':>6s} {'lineage p':>10s} {'rank p':>7s} "
              f"{'member p':>9s} {'combined':>9s}")
        innocents = {}
        for entry in entries:
            loaded = build_suspect(entry, ctx, seed)
            e = ref.test(loaded.model)
            role = entry.kind if what_survives(entry, ctx) != "nothing" or entry.kind == "innocent" else "control"
            if e is None:
                print(f"{entry.title[:56]:56s} {role:9s} another architecture: the lineage test does not apply")
                continue
            if entry.kind == "innocent":
                d = trained_change(loaded.model, ref.foundation_state, ref.names)
                assert d is not None
                innocents[entry.id] = d
            v = a.verify(loaded, name=entry.id)
            both = combine_evidence({"membership": v.evidence["membership"], "lineage": e})
            print(f"{entry.title[:56]:56s} {role:9s} {e['corr_victim']:7.3f} {e['corr_replicas_max']:6.3f} "
                  f"{e['t']:6.1f} {e['p_value']:10.2e} {e['p_rank']:7.3f} {v.evidence['membership']['p_value']:9.2e} "
                  f"{both['p_value']:9.2e}", flush=True)
        runs = np.vstack([ref.victim[None], ref.replicas])
        null = exact_nulls(runs, innocents, args.null_replicas, seed)
        all_null.append(null)
        rates = "  ".join(f"P(p<{al:g}) {np.mean(null < al):.4f}" for al in ALPHAS)
        print(f"exact nulls, seed {seed}: {len(null)} tests ({len(runs)} pseudo-victims x {len(runs) - 1} other runs "
              f"+ {len(innocents)} innocents; K = {args.null_replicas or 'all the others'}): {rates}; "
              f"P(p<0.5) {np.mean(null < 0.5):.3f}; "
              f"KS vs uniform p {stats.kstest(null, 'uniform').pvalue:.3f}", flush=True)
    null = np.concatenate(all_null)
    n = len(null)
    print(f"\nall seeds: {n} exact-null tests; " + "  ".join(
        f"P(p<{al:g}) {np.mean(null < al):.4f} (95 % upper "
        f"{stats.binomtest(int((null < al).sum()), n).proportion_ci(0.95).high:.4f})" for al in ALPHAS))


if __name__ == "__main__":
    main()
