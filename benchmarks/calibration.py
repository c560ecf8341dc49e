"""Calibration and power of the verdict protocols on the demo (real models, real data).

    .venv/bin/python benchmarks/calibration.py --seeds 0 1 2 [--extra-innocents] [--null-splits 200]

For each seed it builds (or reuses) the demo audit and its six suspects, and reports:
1. every suspect's p-value under each protocol (membership = default, holmes, paper);
2. with --extra-innocents, more innocent models of the same foundation with other recipes
   (other seeds, capacity, data size, label smoothing, more data, longer training);
3. an exact-null check of the membership test: the held-out pool is split at random into pseudo-
   members and pseudo-controls that no model ever trained on, so H0 holds for every model, the
   victim included; the fraction of p-values below 0.01 / 0.05 estimates the false-positive rate.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from forensics.audit.verdict import format_p
from forensics.data.images import concat
from forensics.demo.assets import VICTIM_TRAIN, demo_data
from forensics.demo.runner import run_demo
from forensics.method.metrics import per_sample_loss
from forensics.method.stats import difficulty_strata, stratified_rank_test, stratum_weights
from forensics.protocols.builtin import effective_strata
from forensics.runtime.store import ArtifactStore
from forensics.zoo.attacks import run_attack

EXTRA_INNOCENTS = {
    "innocent seed+300 (innocent data)": ("innocent", replace(VICTIM_TRAIN, seed=300)),
    "innocent 2 blocks (innocent data)": ("innocent", replace(VICTIM_TRAIN, trainable_blocks=2, seed=400)),
    "innocent half data": ("innocent_half", replace(VICTIM_TRAIN, seed=500)),
    "innocent label smoothing 0.1": ("innocent", replace(VICTIM_TRAIN, label_smoothing=0.1, seed=600)),
    "innocent innocent+aux data (6k)": ("innocent_aux", replace(VICTIM_TRAIN, seed=700)),
    "innocent 12 epochs lr 3e-3": ("innocent", replace(VICTIM_TRAIN, epochs=12, lr=3e-3, seed=800)),
}


def null_rate(audit, outputs, rng, repeats, weighting):
    """P-values of the membership test on random splits of the held-out pool (exact H0)."""
    design = audit.membership
    pc = audit.queries.positions(1, design.control_rows)
    y = audit.heldout.labels[design.control_rows]
    ref = design.reference_loss_controls
    pvals = []
    for _ in range(repeats):
        perm = rng.permutation(len(pc))
        a, b = perm[: len(pc) // 2], perm[len(pc) // 2:]
        n_strata = effective_strata(audit.config.strata, len(a), len(b))  # as the membership protocol does
        strata = difficulty_strata(np.r_[ref[a], ref[b]], n_strata)
        s = (outputs[pc] != y).astype(float) if outputs.ndim == 1 else per_sample_loss(outputs[pc], y)
        r = stratified_rank_test(s[a], s[b], strata[: len(a)], strata[len(a):],
                                 stratum_weights(n_strata, weighting))
        pvals.append(r.p_value)
    return np.array(pvals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--extra-innocents", action="store_true")
    ap.add_argument("--null-splits", type=int, default=200)
    args = ap.parse_args()
    store = ArtifactStore(args.store) if args.store else ArtifactStore()
    data = demo_data()
    extra_data = {"innocent": data["innocent"], "innocent_half": data["innocent"].subset(np.arange(1500)),
                  "innocent_aux": concat([data["innocent"], data["aux"]], "innocent+aux")}
    summary = {"membership": {"stolen": [], "innocent": []}, "holmes": {"stolen": [], "innocent": []},
               "paper": {"stolen": [], "innocent": []}}
    null_all = {"quadratic": [], "flat": []}
    for seed in args.seeds:
        t = time.perf_counter()
        res = run_demo(seed, store=store)
        a, eng = res.audit, res.audit.engine
        rows = [(r.suspect.name, r.kind, r.verdict) for r in res.suspects]
        if args.extra_innocents:
            for name, (split, cfg) in EXTRA_INNOCENTS.items():
                m = run_attack("innocent", a.victim, a.foundation, extra_data[split], eng,
                               replace(cfg, seed=cfg.seed + seed))
                rows.append((name, "innocent", a.verify(m, name=name)))
        print(f"\n== seed {seed}: victim test accuracy {res.victim_test_accuracy:.3f} "
              f"({time.perf_counter() - t:.0f} s)")
        print(f"{'suspect':36s} {'kind':9s} {'membership':>11s} {'z':>6s} {'holmes':>9s} {'paper':>9s}")
        for name, kind, v in rows:
            e = v.evidence
            print(f"{name[:36]:36s} {kind:9s} {format_p(e['membership']['p_value']):>11s} {e['membership']['z']:6.2f} "
                  f"{format_p(e['holmes']['p_value']):>9s} {format_p(e['paper']['p_value']):>9s}")
            for proto in summary:
                summary[proto][kind].append(e[proto]["p_value"])
        rng = np.random.default_rng(10_000 + seed)
        outs = [eng.logits(a.victim, a.queries.images)]
        for r in res.suspects:
            outs.append(eng.logits(a.load_suspect(r.suspect.source), a.queries.images))
        for w in null_all:
            for o in outs:
                null_all[w].append(null_rate(a, o, rng, args.null_splits, w))
                null_all[w].append(null_rate(a, o.argmax(1), rng, args.null_splits // 4, w))
    print("\n== summary over seeds", args.seeds)
    for proto, d in summary.items():
        st, inn = np.array(d["stolen"]), np.array(d["innocent"])
        print(f"{proto:10s} detection (p<0.01) {np.mean(st < 0.01):.2f} of {len(st)} stolen; false accusations "
              f"(p<0.01) {np.mean(inn < 0.01):.2f}, (p<0.05) {np.mean(inn < 0.05):.2f} of {len(inn)} innocent; "
              f"min innocent p {format_p(inn.min())}; max stolen p {format_p(st.max())}")
    for w, lst in null_all.items():
        p = np.concatenate(lst)
        print(f"exact-null splits of the held-out pool ({w} weights): {len(p)} tests, "
              f"P(p<0.01) = {np.mean(p < 0.01):.4f}, "
              f"P(p<0.05) = {np.mean(p < 0.05):.4f}, P(p<0.5) = {np.mean(p < 0.5):.3f}")


if __name__ == "__main__":
    main()
