"""Are innocent models' membership p-values uniform over independent member/control splits?

    .venv/bin/python benchmarks/uniformity.py --victims lite0 lite1 --splits 8 [--store DIR] [--entries ID ...]

Innocents verified against one audit share its members/controls split, so their p-values move together; only
p-values from independent splits can be tested for uniformity.  For each demo victim (seed 0) this draws
``--splits`` fresh splits of the private data into members and reference rows (the audit's member share), trains a
membership reference on each split's reference rows (as the audit does), and runs the registered ``membership``
protocol on every innocent zoo model (already built in the store, or built now) under each split: the suspect's
logits on every private and held-out image are computed once and indexed by the split.

Printed: per victim and overall, P(p < 0.05), P(p < 0.01), P(p < 0.001), the mean p, a KS test against the uniform
over all p-values (optimistic: the p-values of one split are correlated), and the KS test over one p-value per
split (the first innocent's, rotating), which is independent.
"""
from __future__ import annotations

import argparse
import time
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--victims", nargs="+", default=["lite0", "lite1"])
    ap.add_argument("--splits", type=int, default=8)
    ap.add_argument("--store", default=None)
    ap.add_argument("--entries", nargs="+", default=None, help="innocent zoo entries (default: every innocent)")
    ap.add_argument("--quick", action="store_true", help="the reduced demo (a check that the script runs)")
    ap.add_argument("--repartition", action="store_true",
                    help="each split also re-draws which images of private + held-out are private and which held-out "
                         "(the demo's data file fixes one partition; without this, every split shares it)")
    args = ap.parse_args()
    from scipy import stats

    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    entries = select_zoo_entries(args.entries) if args.entries else list_zoo_entries("innocent")
    membership = get_protocol("membership")
    everything = []
    for victim in args.victims:
        t0 = time.perf_counter()
        audit = forensics.open_audit(demo_spec(0, victim=victim, quick=args.quick), store)
        ctx = demo_zoo_context(audit, quick=args.quick)
        both = concat([audit.private, audit.heldout], "private+heldout")
        logits = {e.id: audit.engine.logits(build_suspect(e, ctx, 0), both) for e in entries}
        pv = np.full((args.splits, len(entries)), np.nan)
        n_p = len(audit.private)
        for r in range(args.splits):
            order = (np.random.default_rng([r, 777]).permutation(len(both)) if args.repartition
                     else np.arange(len(both)))
            private = both.subset(np.sort(order[:n_p]), "private")
            heldout = both.subset(np.sort(order[n_p:]), "heldout")
            _, _, design = train_reference_shadow(audit.engine, audit.foundation, private, heldout,
                                                  audit.config.member_fraction, audit.config.seeded_train,
                                                  np.random.default_rng([r, 4242]))
            view = _SplitView(audit, design, n_p, private, heldout)
            rows = np.r_[np.sort(order[:n_p]), np.sort(order[n_p:])]  # the answers in the view's row order
            for i, e in enumerate(entries):
                pv[r, i] = membership.run(view, logits[e.id][rows], False, None)[0]["p_value"]
            print(f"{victim} split {r}: " + " ".join(f"{p:.3f}" for p in pv[r]), flush=True)
        one = pv[np.arange(args.splits), np.arange(args.splits) % len(entries)]
        everything.append((victim, pv, one))
        flat = pv.ravel()
        print(f"{victim}: {flat.size} innocent p-values ({len(entries)} innocents x {args.splits} splits, "
              f"{time.perf_counter() - t0:.0f} s): P(p<0.05) {np.mean(flat < 0.05):.3f}, P(p<0.01) "
              f"{np.mean(flat < 0.01):.3f}, P(p<0.001) {np.mean(flat < 0.001):.3f}, mean {flat.mean():.3f}; KS p "
              f"{stats.kstest(flat, 'uniform').pvalue:.3f} (all), {stats.kstest(one, 'uniform').pvalue:.3f} "
              "(one per split)", flush=True)
    flat = np.concatenate([pv.ravel() for _, pv, _ in everything])
    one = np.concatenate([o for _, _, o in everything])
    print(f"\nall victims: {flat.size} innocent p-values: P(p<0.05) {np.mean(flat < 0.05):.3f}, P(p<0.01) "
          f"{np.mean(flat < 0.01):.3f}, P(p<0.001) {np.mean(flat < 0.001):.3f}, mean {flat.mean():.3f}; KS p "
          f"{stats.kstest(flat, 'uniform').pvalue:.3f} (all), {stats.kstest(one, 'uniform').pvalue:.3f} "
          f"({one.size}, one per split)")


if __name__ == "__main__":
    main()
