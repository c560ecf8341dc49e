"""Item 1 of issue 17, a direction tried and not kept: the lineage test's null applied to a suspect's *answers*.

    .venv/bin/python benchmarks/output_lineage.py --store DIR [--victim lite0] [--replicas 19] [--entries ID ...]

The lineage replicas (K more runs of the victim's recipe on its data, from the same foundation and head, other
seeds) are exchangeable with the victim for any suspect independent of the victim's run.  So any statistic of
(suspect answers, one model's answers) compared between the victim and its replicas gives an exact rank p-value and,
like the lineage test, a Student-t prediction on Fisher-z values - for suspects known only by their answers, of any
architecture.  Statistics:

* ``soft``   - the correlation of the suspect's log-probabilities with a model's, both centred by the mean over the
  victim and its replicas (the victim's idiosyncrasies in its "dark knowledge" against its recipe's average);
* ``labels`` - top-1 agreement with a model on the queries where the victim and its replicas disagree.

Exact nulls: every replica in turn as a pseudo-victim, the victim and the other replicas as its replicas, and each
remaining replica as the suspect (independent runs).  The replicas are trained (or reused) through the store as the
audit's ``lineage_replicas`` would.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

import forensics
from forensics.demo.zoo import demo_zoo_context
from forensics.engine.stored import train_stored
from forensics.method.lineage import REPLICA_STAGE, lineage_pvalues, replica_seed
from forensics.zoo.attacks import fidelity
from forensics.zoo.entries import USEFUL, build_suspect, list_zoo_entries, select_zoo_entries, what_survives


def log_softmax(x: np.ndarray) -> np.ndarray:
    from scipy.special import log_softmax as scipy_log_softmax

    return np.asarray(scipy_log_softmax(np.asarray(x, np.float64), axis=1))


def corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


class Panel:
    """The answers of the victim (row 0) and its replicas on the audit's queries."""

    def __init__(self, answers: list[np.ndarray]):
        self.logp = np.stack([log_softmax(x) for x in answers])
        self.mean = self.logp.mean(0)
        self.resid = (self.logp - self.mean).reshape(len(answers), -1)
        self.labels = self.logp.argmax(2)
        self.disputed = ~(self.labels == self.labels[0]).all(0)

    def test(self, out: np.ndarray, victim: int = 0, skip: int | None = None) -> tuple[dict, dict]:
        """(soft, labels) p-values with row ``victim`` as the victim and the others (but ``skip``) as replicas."""
        rows = [i for i in range(len(self.resid)) if i not in (victim, skip)]
        s = (log_softmax(out) - self.mean).reshape(-1)
        soft = np.array([corr(s, self.resid[i]) for i in [victim, *rows]])
        y = out.argmax(1)[self.disputed]
        agree = np.array([(y == self.labels[i][self.disputed]).mean() for i in [victim, *rows]])
        return lineage_pvalues(soft[0], soft[1:]), lineage_pvalues(2 * agree[0] - 1, 2 * agree[1:] - 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", default=None)
    ap.add_argument("--victim", default="lite0")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--replicas", type=int, default=19)
    ap.add_argument("--entries", nargs="+", default=None)
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    a = forensics.open_audit(forensics.demo_spec(args.seed, victim=args.victim), store)
    ctx = demo_zoo_context(a)
    recipe, queries = a.config.seeded_train, a.queries.images
    answers = [a.engine.logits(a.victim, queries)]
    for k in range(args.replicas):
        cfg = replace(recipe, seed=replica_seed(recipe.seed, k))
        model, _ = train_stored(a.engine, REPLICA_STAGE, a.foundation, a.private, a.private.labels, cfg,
                                label=f"lineage replica {k + 1}/{args.replicas}")
        answers.append(a.engine.logits(model, queries))
    panel = Panel(answers)
    print(f"{args.victim} seed {args.seed}: {args.replicas} replicas, {len(queries)} queries "
          f"({int(panel.disputed.sum())} disputed among the victim and its replicas)")
    rows = []
    for e in select_zoo_entries(args.entries) if args.entries else list_zoo_entries():
        model = build_suspect(e, ctx, args.seed)
        fid = fidelity(a.engine, a.victim, model, ctx.test)
        counts = (e.kind == "stolen" and what_survives(e, ctx) != "nothing"
                  and fid["test_accuracy"] >= USEFUL * ctx.victim_test_accuracy)
        role = "theft" if counts else ("innocent" if e.kind == "innocent" else "other")
        soft, labels = panel.test(a.engine.logits(model, queries))
        rows.append((role, soft["p_value"], labels["p_value"]))
        print(f"{e.id[:40]:40s} {role:8s} soft r {soft['corr_victim']:.3f} (replicas {soft['corr_replicas_mean']:.3f}"
              f", max {soft['corr_replicas_max']:.3f}) p {soft['p_value']:.1e} | labels p {labels['p_value']:.1e}",
              flush=True)
    null_soft, null_labels = [], []
    for v in range(1, len(answers)):
        for s in range(len(answers)):
            if s not in (0, v):
                soft, labels = panel.test(answers[s], victim=v, skip=s)
                null_soft.append(soft["p_value"])
                null_labels.append(labels["p_value"])
    for name, col, null in (("soft", 1, null_soft), ("labels", 2, null_labels)):
        th = [r[col] for r in rows if r[0] == "theft"]
        inn = [r[col] for r in rows if r[0] == "innocent"]
        nv = np.array(null)
        print(f"{name:7s} thefts {sum(p < 0.01 for p in th)}/{len(th)} at 0.01; innocents "
              f"{sum(p < 0.01 for p in inn)}/{len(inn)} at 0.01; exact null {len(nv)} tests: P(p<0.05) "
              f"{np.mean(nv < 0.05):.4f} P(p<0.01) {np.mean(nv < 0.01):.4f} P(p<0.001) {np.mean(nv < 0.001):.4f}")


if __name__ == "__main__":
    main()
