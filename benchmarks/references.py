"""Item 1 of issue 17, one direction: several reference models trained on random halves of the private data.

    .venv/bin/python benchmarks/references.py --seeds 0 [--pairs 4] [--null-splits 200] [--store DIR]
                                              [--victim lite0|lite1] [--entries ID ...] [--budgets 500 1000]

Today's membership test has one reference shadow R, trained on a random half of the private data D; the other half
are the members, the held-out data the controls, and R's loss stratifies both by difficulty.  Here ``2 * pairs``
references are trained instead, in complementary pairs (the two of a pair split D into two halves), so every private
sample is unseen by exactly one reference of each pair and **all of D serves as members**.  Each control gets
*virtual halves*: one reference of each pair, drawn at random, counts as "unseen" for it, so members and controls
are calibrated by the same number of references (``pairs``), trained on halves of the same size, and stay
exchangeable under H0.

Statistics compared (all the difficulty-stratified, quadratically weighted rank test of the default protocol):

* ``today``     - the audit's own membership protocol (half of D as members, one reference);
* ``all-D P<p>`` - the suspect's loss, all of D as members, strata from the mean loss of the unseen references among
  the first p pairs (what ``AuditConfig.reference_pairs = p`` runs);
* ``all-D - R``   - the suspect's loss minus that mean (a per-sample calibration, LiRA / RMIA in spirit), same strata;
* ``all-D z``     - LiRA's statistic: the suspect's logit-scaled confidence on the true class standardised by the
  unseen references' mean and a pooled standard deviation, same strata.

Each is checked on exact nulls (the held-out pool split at random into pseudo-members and pseudo-controls, both
calibrated by virtual halves) for every suspect's answers, and on the zoo's thefts and innocents (counted as the
benchmark counts them: derived from the victim and useful).  ``--budgets N ...`` runs everything on N queries as well
(half members, half controls, drawn once, independently of any suspect), as an API audit would pay for.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

import forensics
from forensics.data.images import concat
from forensics.demo.zoo import demo_zoo_context
from forensics.method.metrics import per_sample_loss
from forensics.method.shadows import train_reference_pairs
from forensics.method.stats import difficulty_strata, stratified_rank_test, stratum_weights
from forensics.protocols import get_protocol
from forensics.protocols.builtin import effective_strata
from forensics.protocols.registry import heldout_of
from forensics.zoo.attacks import fidelity
from forensics.zoo.entries import USEFUL, build_suspect, list_zoo_entries, select_zoo_entries, what_survives


def logit_confidence(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    """LiRA's phi = log(p / (1 - p)) of the true class, computed stably from the logits."""
    from scipy.special import logsumexp

    z = np.asarray(logits, np.float64)
    other = z.copy()
    other[np.arange(len(y)), y] = -np.inf
    return z[np.arange(len(y)), y] - logsumexp(other, axis=1)


class References:
    """``2 * pairs`` references on complementary halves of D; per row of D + held-out, the unseen references."""

    def __init__(self, audit, pairs: int):
        """The references an audit with ``reference_pairs = pairs`` trains (the same store entries: the product's
        :func:`train_reference_pairs` with the audit's seed), each one's loss and phi on every row."""
        a = audit
        private, held = a.private, heldout_of(a)
        self.all = concat([private, held], "private+heldout")
        self.n_private, n = len(private), len(private) + len(held)
        t = time.perf_counter()
        made = train_reference_pairs(a.engine, a.foundation, private, held, pairs, a.config.seeded_train,
                                     np.random.default_rng(a.config.seed))
        self.seconds = time.perf_counter() - t
        self.design = made.design
        self.loss = np.zeros((2 * pairs, n))
        self.phi = np.zeros((2 * pairs, n))
        self.unseen = np.zeros((2 * pairs, n), bool)
        for r, model in enumerate(made.models):
            out = a.engine.logits(model, self.all)
            self.loss[r] = per_sample_loss(out, self.all.labels)
            self.phi[r] = logit_confidence(out, self.all.labels)
            self.unseen[r, : self.n_private] = True
            self.unseen[r, made.trained_rows[r]] = False
            self.unseen[r, self.n_private:] = made.virtual_halves[r // 2] == r % 2

    def calibration(self, pairs: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Per row: the mean loss and mean phi of its unseen references among the first ``pairs`` pairs, and the
        pooled standard deviation of phi."""
        u = self.unseen[: 2 * pairs]
        mean_loss = (self.loss[: 2 * pairs] * u).sum(0) / pairs
        mean_phi = (self.phi[: 2 * pairs] * u).sum(0) / pairs
        resid = (self.phi[: 2 * pairs] - mean_phi) * u
        sd = float(np.sqrt((resid ** 2).sum() / max(1, u.sum() - u.shape[1])))
        return mean_loss, mean_phi, sd


def rank_p(score: np.ndarray, difficulty: np.ndarray, members: np.ndarray, controls: np.ndarray,
           n_strata: int, weighting: str) -> float:
    k = effective_strata(n_strata, len(members), len(controls))
    strata = difficulty_strata(np.r_[difficulty[members], difficulty[controls]], k)
    r = stratified_rank_test(score[members], score[controls], strata[: len(members)], strata[len(members):],
                             stratum_weights(k, weighting))
    return r.p_value


def candidates(refs: References, out: np.ndarray, pairs_list: list[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (per-row score, per-row difficulty) of every candidate statistic."""
    y = refs.all.labels
    loss = per_sample_loss(out, y)
    phi = logit_confidence(out, y)
    found = {}
    for p in pairs_list:
        mean_loss, mean_phi, sd = refs.calibration(p)
        found[f"all-D P{p}"] = (loss, mean_loss)
        if p == max(pairs_list):
            found[f"all-D - R P{p}"] = (loss - mean_loss, mean_loss)
            found[f"all-D z P{p}"] = (-(phi - mean_phi) / sd, mean_loss)
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--pairs-list", type=int, nargs="+", default=None,
                    help="evaluate the design with the first P pairs for each P (default: --pairs only)")
    ap.add_argument("--null-splits", type=int, default=200)
    ap.add_argument("--budgets", type=int, nargs="*", default=[], help="also run on these many queries (half members)")
    ap.add_argument("--store", default=None)
    ap.add_argument("--victim", default="lite0", help="which demo victim (lite0, lite1)")
    ap.add_argument("--entries", nargs="+", default=None)
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    entries = select_zoo_entries(args.entries) if args.entries else list_zoo_entries()
    designs = ["full"] + [f"{b} queries" for b in args.budgets]
    budget_of = dict(zip(designs[1:], args.budgets, strict=True))
    pairs_list = sorted(set(args.pairs_list or []) | {args.pairs})
    if max(pairs_list) > args.pairs:
        ap.error("--pairs-list may not exceed --pairs")
    rows: list[tuple] = []
    null: dict[tuple[str, str], list[float]] = {}
    stats: list[str] = ["today"]
    t0 = time.perf_counter()
    for seed in args.seeds:
        a = forensics.open_audit(forensics.demo_spec(seed, victim=args.victim), store)
        ctx = demo_zoo_context(a)
        refs = References(a, args.pairs)
        assert np.allclose(refs.calibration(args.pairs)[0], np.r_[refs.design.reference_loss_members,
                                                                   refs.design.reference_loss_controls], atol=1e-4)
        cfg = a.config
        n_all = len(refs.all)
        members, controls = np.arange(refs.n_private), np.arange(refs.n_private, n_all)
        sets = {"full": (members, controls)}
        for d, b in budget_of.items():  # drawn once, independently of any suspect (as query_budget does)
            rng = np.random.default_rng([seed, b])
            sets[d] = (np.sort(rng.choice(members, b // 2, replace=False)),
                       np.sort(rng.choice(controls, b - b // 2, replace=False)))
        print(f"== seed {seed}: {2 * args.pairs} references in {refs.seconds:.0f} s; {len(members)} members, "
              f"{len(controls)} controls (today: {len(a.membership.member_rows)} members)", flush=True)
        for entry in entries:
            model = build_suspect(entry, ctx, seed)
            fid = fidelity(a.engine, a.victim, model, ctx.test)
            counts = (entry.kind == "stolen" and what_survives(entry, ctx) != "nothing"
                      and fid["test_accuracy"] >= USEFUL * ctx.victim_test_accuracy)
            role = "theft" if counts else ("innocent" if entry.kind == "innocent" else "other")
            out_all = a.engine.logits(model, refs.all)
            sc = candidates(refs, out_all, pairs_list)
            for name in sc:
                if name not in stats:
                    stats.append(name)
            ps: dict[tuple[str, str], float] = {}
            q = a.engine.logits(model, a.queries.images)
            ps[("full", "today")] = get_protocol("membership").run(a, q, False, None)[0]["p_value"]
            for d in designs:
                m, c = sets[d]
                if d != "full":
                    sub = a.membership.subsample(budget_of[d], np.random.default_rng([seed, budget_of[d]]))
                    view = replace(a, membership=sub)  # what query_budget does
                    ps[(d, "today")] = get_protocol("membership").run(view, q, False, None)[0]["p_value"]
                share = len(m) / (len(m) + len(c))
                rng = np.random.default_rng([seed, len(rows), 11])
                for name, (score, difficulty) in sc.items():
                    ps[(d, name)] = rank_p(score, difficulty, m, c, cfg.strata, cfg.stratum_weighting)
                for _ in range(args.null_splits):
                    perm = rng.permutation(c)
                    k = int(round(share * len(c)))
                    pm, pc = np.sort(perm[:k]), np.sort(perm[k:])
                    for name, (score, difficulty) in sc.items():
                        null.setdefault((d, name), []).append(
                            rank_p(score, difficulty, pm, pc, cfg.strata, cfg.stratum_weighting))
            rows.append((entry, seed, role, fid["agreement"], ps))
            print(f"{entry.title[:46]:46s} #{seed} {role:8s} {fid['agreement']:.2f} "
                  + " ".join(f"{d[:4]}/{s}={p:.1e}" for (d, s), p in ps.items()), flush=True)
    print(f"\n== {len(rows)} suspects, {time.perf_counter() - t0:.0f} s")
    for d in designs:
        for s in stats:
            th = [r[4][(d, s)] for r in rows if r[2] == "theft"]
            inn = [r[4][(d, s)] for r in rows if r[2] == "innocent"]
            low, mean = min(inn, default=float("nan")), np.mean(inn) if inn else float("nan")
            line = (f"{d:12s} {s:14s} thefts {sum(p < 0.01 for p in th)}/{len(th)} at 0.01, "
                    f"{sum(p < 0.001 for p in th)} at 0.001; innocents {sum(p < 0.01 for p in inn)}/{len(inn)} at "
                    f"0.01 (min {low:.3f}, mean {mean:.2f})")
            if s != "today":
                nv = np.array(null[(d, s)])
                line += (f"; exact null {len(nv)}: P(p<0.05) {np.mean(nv < 0.05):.4f} P(p<0.01) "
                         f"{np.mean(nv < 0.01):.4f} P(p<0.001) {np.mean(nv < 0.001):.4f}")
            print(line)
            missed = [f"{r[0].id} {r[4][(d, s)]:.2g}" for r in rows if r[2] == "theft" and r[4][(d, s)] >= 0.01]
            print("    missed: " + ", ".join(missed))


if __name__ == "__main__":
    main()
