"""Candidate membership statistics on the attack zoo, each with an exact-null check.

    .venv/bin/python benchmarks/frontier.py --seeds 0 1 2 [--null-splits 100] [--store DIR]

For every zoo suspect of the demo victim (built or reused from the store: run `bench` first and this costs
only inference) the membership test is run with several per-sample scores (lower = fits better):

* ``loss`` - cross-entropy (the default protocol's score);
* ``margin`` - the best other class's logit minus the true class's (uses the whole output vector);
* ``loss - R`` / ``margin - R`` - the same minus the reference shadow R's value on the same sample (a per-sample
  calibration against a model that saw neither members nor controls: the likelihood-ratio idea of LiRA / RMIA
  with one reference).

Each score keeps the test valid by construction (members and controls are exchangeable for any function of a
model that never learned from them and of R, which saw neither); the exact-null check measures it: the held-out
pool split at random into pseudo-members and pseudo-controls, for every suspect's answers.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import forensics
from forensics.demo.zoo import demo_zoo_context
from forensics.method.metrics import per_sample_loss
from forensics.method.stats import difficulty_strata, stratified_rank_test, stratum_weights
from forensics.protocols.builtin import effective_strata
from forensics.zoo.attacks import fidelity
from forensics.zoo.entries import build_suspect, list_zoo_entries


def margin(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64).copy()
    true = z[np.arange(len(y)), y]
    z[np.arange(len(y)), y] = -np.inf
    return z.max(1) - true


SCORES = {
    "loss": lambda s, r, y: per_sample_loss(s, y),
    "margin": lambda s, r, y: margin(s, y),
    "loss - R": lambda s, r, y: per_sample_loss(s, y) - per_sample_loss(r, y),
    "margin - R": lambda s, r, y: margin(s, y) - margin(r, y),
}


def rank_p(score_m, score_c, ref_m, ref_c, audit) -> float:
    n_strata = effective_strata(audit.config.strata, len(score_m), len(score_c))
    strata = difficulty_strata(np.r_[ref_m, ref_c], n_strata)
    return stratified_rank_test(score_m, score_c, strata[:len(score_m)], strata[len(score_m):],
                                stratum_weights(n_strata, audit.config.stratum_weighting)).p_value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--null-splits", type=int, default=100)
    ap.add_argument("--store", default=None)
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    rng = np.random.default_rng(0)
    rows, null = [], {k: [] for k in SCORES}
    t0 = time.perf_counter()
    for seed in args.seeds:
        a = forensics.open_audit(forensics.demo_spec(seed), store)
        ctx = demo_zoo_context(a)
        d = a.membership
        pm, pc = a.queries.positions(0, d.member_rows), a.queries.positions(1, d.control_rows)
        ym, yc = a.private.labels[d.member_rows], a.heldout.labels[d.control_rows]
        ref = a.engine.logits(a.shadows.reference, a.queries.images)
        for entry in list_zoo_entries():
            model = build_suspect(entry, ctx, seed)
            out = a.engine.logits(model, a.queries.images)
            agree = fidelity(a.engine, a.victim, model, ctx.test)["agreement"]
            ps = {}
            for name, fn in SCORES.items():
                ps[name] = rank_p(fn(out[pm], ref[pm], ym), fn(out[pc], ref[pc], yc),
                                  d.reference_loss_members, d.reference_loss_controls, a)
                sc = fn(out[pc], ref[pc], yc)
                for _ in range(args.null_splits):
                    perm = rng.permutation(len(pc))
                    h = len(pc) // 2
                    null[name].append(rank_p(sc[perm[:h]], sc[perm[h:]], d.reference_loss_controls[perm[:h]],
                                             d.reference_loss_controls[perm[h:]], a))
            rows.append((entry, seed, agree, ps))
            print(f"{entry.title[:48]:48s} #{seed} {entry.kind:8s} {agree:.2f} "
                  + " ".join(f"{n}={p:.1e}" for n, p in ps.items()), flush=True)
    print(f"\n== {len(rows)} suspects, {time.perf_counter() - t0:.0f} s")
    thefts = [r for r in rows if r[0].kind == "stolen" and r[2] >= 0.8]
    innocents = [r for r in rows if r[0].kind == "innocent"]
    for name in SCORES:
        tp = np.mean([r[3][name] < 0.01 for r in thefts])
        fp1 = np.mean([r[3][name] < 0.01 for r in innocents])
        fp5 = np.mean([r[3][name] < 0.05 for r in innocents])
        nl = np.array(null[name])
        print(f"{name:12s} faithful thefts caught {tp:.3f} ({len(thefts)}), innocents at 0.01 {fp1:.3f} / 0.05 "
              f"{fp5:.3f} (min p {min(r[3][name] for r in innocents):.3f}); exact null {len(nl)} tests: "
              f"P(p<0.01) = {np.mean(nl < 0.01):.4f}, P(p<0.05) = {np.mean(nl < 0.05):.4f}")
        groups = sorted({r[0].group for r in thefts})
        print("   " + "; ".join(f"{g}: {sum(r[3][name] < 0.01 for r in thefts if r[0].group == g)}/"
                                f"{sum(1 for r in thefts if r[0].group == g)}" for g in groups))


if __name__ == "__main__":
    main()
