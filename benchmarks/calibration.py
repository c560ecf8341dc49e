"""Calibration and power of the verdict protocols on the demo (real models, real data).

    .venv/bin/python benchmarks/calibration.py --seeds 0 1 2 [--extra-innocents] [--null-splits 200]

For each seed it builds (or reuses) the demo audit and its six suspects, and reports:
1. every suspect's p-value under each protocol (membership = default, holmes, paper);
2. with --extra-innocents, more innocent models of the same foundation with other recipes
   (other seeds, capacity, data size, label smoothing, more data, longer training);
3. an exact-null check of the registered membership protocol (forensics.protocols.nullcheck, the code path
   of the verdict): the held-out pool is split at random into pseudo-members and pseudo-controls that no
   model ever trained on, so H0 holds for every model, the victim included; every model answers with
   logits and with labels only; the share of p-values below 0.05 / 0.01 / 0.001 estimates the
   false-positive rate (--null-splits 200 over 3 seeds and 14 answer sets: 8,400 tests per weighting).
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
from forensics.protocols.nullcheck import exact_null_pvalues, rejection_rates
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


def null_pvalues(audit, outputs, draws, seed, weighting):
    """P-values of the registered membership protocol on random splits of the held-out pool (exact H0), with the
    audit's strata and the given stratum weighting (forensics.protocols.nullcheck: the verdict's own code path)."""
    config = replace(audit.config, stratum_weighting=weighting)
    return exact_null_pvalues(audit, outputs, draws=draws, seed=seed, config=config).ravel()


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
        outs = [eng.logits(a.victim, a.queries.images)]
        for r in res.suspects:
            outs.append(eng.logits(a.load_suspect(r.suspect.source), a.queries.images))
        outs += [o.argmax(1) for o in outs]   # the same models answering with labels only
        for w in null_all:
            null_all[w].append(null_pvalues(a, outs, args.null_splits, 10_000 + seed, w))
    print("\n== summary over seeds", args.seeds)
    for proto, d in summary.items():
        st, inn = np.array(d["stolen"]), np.array(d["innocent"])
        print(f"{proto:10s} detection (p<0.01) {np.mean(st < 0.01):.2f} of {len(st)} stolen; false accusations "
              f"(p<0.01) {np.mean(inn < 0.01):.2f}, (p<0.05) {np.mean(inn < 0.05):.2f} of {len(inn)} innocent; "
              f"min innocent p {format_p(inn.min())}; max stolen p {format_p(st.max())}")
    for w, lst in null_all.items():
        p = np.concatenate(lst)
        r = rejection_rates(p, (0.05, 0.01, 0.001))
        print(f"exact-null splits of the held-out pool ({w} weights): {len(p)} tests, "
              f"P(p<0.05) = {r[0.05]:.4f}, P(p<0.01) = {r[0.01]:.4f}, P(p<0.001) = {r[0.001]:.4f}, "
              f"P(p<0.5) = {np.mean(p < 0.5):.3f}")


if __name__ == "__main__":
    main()
