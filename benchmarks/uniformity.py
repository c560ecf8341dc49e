"""Are innocent models' membership p-values uniform over independent member/control splits?

    .venv/bin/python benchmarks/uniformity.py --victims lite0 lite1 --splits 40 --repartition [--store DIR]
        [--entries ID ... | VICTIM=ID,ID ...] [--out uniformity.json]

Innocents verified against one audit share its members/controls split, so their p-values move together; only
p-values from independent splits can be tested for uniformity.  For each demo victim (seed 0) every split draws a
fresh split of the private data into members and reference rows (the audit's member share), trains a membership
reference on the reference rows (as the audit does, through the product's ``train_reference_shadow``), and runs the
registered ``membership`` protocol on every innocent zoo model (already built in the store, or built now) under
that split: the suspect's logits on every private and held-out image are computed once and indexed by the split.
With ``--repartition`` each split also re-draws which of the private + held-out images are private (the demo's data
file fixes one partition; without it, every split shares that one draw and a model's fit to it).

Splits run victim after victim (split 0 of every victim, then split 1, ...), and every split's p-values are written
to ``--out`` as they come, so an interrupted run keeps what it measured and a re-run reuses the store's references.

Printed: per victim and overall, P(p < 0.05), P(p < 0.01), P(p < 0.001), the mean p, a KS test against the uniform
over all p-values (optimistic: the p-values of one split are correlated), and the KS test over one p-value per
split (the innocents in turn), which are independent.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import forensics
from forensics.data.images import concat
from forensics.demo.assets import demo_spec
from forensics.demo.zoo import demo_zoo_context
from forensics.method.shadows import train_reference_shadow
from forensics.protocols.registry import get_protocol
from forensics.zoo.entries import build_suspect, list_zoo_entries, select_zoo_entries


class _AllImages:
    """A query set of every private image (source 0) and then every held-out image (source 1)."""

    def __init__(self, n_private: int):
        self.n_private = n_private

    def positions(self, source: int, rows: np.ndarray) -> np.ndarray:
        return np.asarray(rows) + (0 if source == 0 else self.n_private)


class _SplitView:
    """The audit with another membership design, answers indexed over every private and held-out image."""

    def __init__(self, audit: Any, design: Any, n_private: int, private: Any, heldout: Any):
        self._audit, self.membership, self.queries = audit, design, _AllImages(n_private)
        self.private, self.heldout = private, heldout

    def __getattr__(self, name: str) -> Any:
        return getattr(self._audit, name)


def _entries(spec: list[str] | None, victim: str) -> list:
    """``ID ...`` for every victim, or ``VICTIM=ID,ID`` for one; default: every innocent of the zoo."""
    if not spec:
        return list_zoo_entries("innocent")
    mine = [s.split("=", 1)[1] for s in spec if s.startswith(f"{victim}=")]
    plain = [s for s in spec if "=" not in s]
    ids = [i for s in mine for i in s.split(",") if i] or plain
    return select_zoo_entries(ids) if ids else list_zoo_entries("innocent")


def _summary(label: str, pv: np.ndarray) -> str:
    """pv: (splits, innocents) p-values, NaN where not measured."""
    from scipy import stats

    done = pv[~np.isnan(pv).any(axis=1)]
    flat = done.ravel()
    one = done[np.arange(len(done)), np.arange(len(done)) % done.shape[1]]
    return (f"{label}: {flat.size} innocent p-values ({done.shape[1]} innocents x {len(done)} splits): "
            f"P(p<0.05) {np.mean(flat < 0.05):.3f}, P(p<0.01) {np.mean(flat < 0.01):.3f}, "
            f"P(p<0.001) {np.mean(flat < 0.001):.3f}, mean {flat.mean():.3f}, min {flat.min():.4f}; KS p "
            f"{stats.kstest(flat, 'uniform').pvalue:.3f} (all), {stats.kstest(one, 'uniform').pvalue:.3f} "
            f"({one.size}, one per split)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victims", nargs="+", default=["lite0", "lite1"])
    ap.add_argument("--splits", type=int, default=8)
    ap.add_argument("--store", default=None)
    ap.add_argument("--entries", nargs="+", default=None,
                    help="innocent zoo entries for every victim, or VICTIM=ID,ID for one (default: every innocent)")
    ap.add_argument("--quick", action="store_true", help="the reduced demo (a check that the script runs)")
    ap.add_argument("--repartition", action="store_true",
                    help="each split also re-draws which images of private + held-out are private and which held-out "
                         "(the demo's data file fixes one partition; without this, every split shares it)")
    ap.add_argument("--out", default=None, help="a JSON file of every split's p-values, rewritten after each split")
    args = ap.parse_args()
    from scipy import stats

    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    membership = get_protocol("membership")
    state: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for victim in args.victims:
        audit = forensics.open_audit(demo_spec(0, victim=victim, quick=args.quick), store)
        ctx = demo_zoo_context(audit, quick=args.quick)
        both = concat([audit.private, audit.heldout], "private+heldout")
        entries = _entries(args.entries, victim)
        logits = {e.id: audit.engine.logits(build_suspect(e, ctx, 0), both) for e in entries}
        state[victim] = {"audit": audit, "both": both, "entries": entries, "logits": logits,
                         "pv": np.full((args.splits, len(entries)), np.nan)}
        print(f"{victim}: {len(entries)} innocents ready ({time.perf_counter() - t0:.0f} s)", flush=True)
    for r in range(args.splits):
        for victim, s in state.items():
            audit, both, n_p = s["audit"], s["both"], len(s["audit"].private)
            order = (np.random.default_rng([r, 777]).permutation(len(both)) if args.repartition
                     else np.arange(len(both)))
            private = both.subset(np.sort(order[:n_p]), "private")
            heldout = both.subset(np.sort(order[n_p:]), "heldout")
            _, _, design = train_reference_shadow(audit.engine, audit.foundation, private, heldout,
                                                  audit.config.member_fraction, audit.config.seeded_train,
                                                  np.random.default_rng([r, 4242]))
            view = _SplitView(audit, design, n_p, private, heldout)
            rows = np.r_[np.sort(order[:n_p]), np.sort(order[n_p:])]  # the answers in the view's row order
            for i, e in enumerate(s["entries"]):
                s["pv"][r, i] = membership.run(view, s["logits"][e.id][rows], False, None)[0]["p_value"]
            print(f"{victim} split {r} ({time.perf_counter() - t0:.0f} s): "
                  + " ".join(f"{p:.3f}" for p in s["pv"][r]), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps({
                    "repartition": args.repartition, "quick": args.quick,
                    "victims": {v: {"innocents": [e.id for e in x["entries"]],
                                    "p_values": [[None if np.isnan(p) else float(p) for p in row]
                                                 for row in x["pv"][:r + 1]]}
                                for v, x in state.items()}}, indent=1))
    print()
    for victim, s in state.items():
        print(_summary(victim, s["pv"]))
    flat = np.concatenate([s["pv"].ravel() for s in state.values()])
    one = np.concatenate([s["pv"][np.arange(args.splits), np.arange(args.splits) % s["pv"].shape[1]]
                          for s in state.values()])
    print(f"all victims: {flat.size} innocent p-values: P(p<0.05) {np.mean(flat < 0.05):.3f}, P(p<0.01) "
          f"{np.mean(flat < 0.01):.3f}, P(p<0.001) {np.mean(flat < 0.001):.3f}, mean {flat.mean():.3f}; KS p "
          f"{stats.kstest(flat, 'uniform').pvalue:.3f} (all), {stats.kstest(one, 'uniform').pvalue:.3f} "
          f"({one.size}, one per split)")


if __name__ == "__main__":
    main()
