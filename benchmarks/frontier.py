"""Candidate membership statistics on the attack zoo, each a registered protocol with its exact-null check.

    .venv/bin/python benchmarks/frontier.py --seeds 0 1 2 [--null-splits 100] [--store DIR] [--entries ID ...]

For every zoo suspect of the demo victim (built or reused from the store: run `bench` first and this costs
only inference) the membership test is run with several per-sample scores of logit answers (lower = fits better):

* ``loss`` - cross-entropy (the default protocol itself, ``membership``);
* ``margin`` - the best other class's logit minus the true class's (uses the whole output vector);
* ``loss - R`` / ``margin - R`` - the same minus the reference shadow R's value on the same sample (a per-sample
  calibration against a model that saw neither members nor controls: the likelihood-ratio idea of LiRA / RMIA
  with one reference).

Each candidate is registered in this process as a protocol (``frontier-<name>``, a baseline: never an audit's
verdict) that runs :func:`forensics.protocols.builtin.membership_test` with its score, so its p-values and its
exact-null check (:func:`forensics.protocols.nullcheck.exact_null_pvalues`: the held-out pool split at random into
pseudo-members and pseudo-controls, for every suspect's answers) come from the same code path as a verdict's.
Thefts are counted as the benchmark counts them: derived from the victim and useful.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import forensics
from forensics.demo.zoo import demo_zoo_context
from forensics.method.metrics import per_sample_loss
from forensics.protocols import VerdictProtocol, get_protocol, register_protocol
from forensics.protocols.builtin import loss_score, membership_test
from forensics.protocols.nullcheck import exact_null_pvalues, rejection_rates
from forensics.zoo.attacks import fidelity
from forensics.zoo.entries import USEFUL, build_suspect, list_zoo_entries, select_zoo_entries, what_survives


def margin(logits: np.ndarray, y: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64).copy()
    true = z[np.arange(len(y)), y]
    z[np.arange(len(y)), y] = -np.inf
    return z.max(1) - true


def _reference(audit) -> np.ndarray:
    """The reference shadow's logits on the query set (stored: read once per audit)."""
    if "frontier_reference" not in audit.memo:
        audit.memo["frontier_reference"] = audit.engine.logits(audit.shadows.reference, audit.queries.images)
    return audit.memo["frontier_reference"]


def margin_score(audit, out, pos, y):
    return margin(out[pos], y)


def loss_minus_r(audit, out, pos, y):
    return per_sample_loss(out[pos], y) - per_sample_loss(_reference(audit)[pos], y)


def margin_minus_r(audit, out, pos, y):
    return margin(out[pos], y) - margin(_reference(audit)[pos], y)


SCORES = {"loss": loss_score, "margin": margin_score, "loss - R": loss_minus_r, "margin - R": margin_minus_r}


def register_candidates() -> dict[str, str]:
    """Each score as a protocol of this process; returns score name -> protocol name."""
    names = {"loss": "membership"}
    for name, fn in SCORES.items():
        if name == "loss":
            continue
        pname = "frontier-" + name.replace(" - ", "-minus-").replace(" ", "-").lower()

        def run(audit, out, label_only, extra=None, fn=fn):
            return membership_test(audit, out, label_only, score=fn)

        register_protocol(VerdictProtocol(pname, f"membership test, {name} score (candidate)", name, run,
                                          needs_heldout=True, needs_logits=True, calibrated=False, baseline=True,
                                          budget_on="both",
                                          samples=lambda e: int(e["members"] + e["controls"])))
        names[name] = pname
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--null-splits", type=int, default=100)
    ap.add_argument("--store", default=None)
    ap.add_argument("--entries", nargs="+", default=None, help="zoo entry ids (default: the whole zoo)")
    args = ap.parse_args()
    store = forensics.ArtifactStore(args.store) if args.store else forensics.ArtifactStore()
    protocols = register_candidates()
    entries = select_zoo_entries(args.entries) if args.entries else list_zoo_entries()
    rows, null = [], {k: [] for k in SCORES}
    t0 = time.perf_counter()
    for seed in args.seeds:
        a = forensics.open_audit(forensics.demo_spec(seed), store)
        ctx = demo_zoo_context(a)
        victim_acc = ctx.victim_test_accuracy
        for entry in entries:
            model = build_suspect(entry, ctx, seed)
            out = a.engine.logits(model, a.queries.images)
            fid = fidelity(a.engine, a.victim, model, ctx.test)
            survives = what_survives(entry, ctx)
            counts = entry.kind == "stolen" and survives != "nothing" and fid["test_accuracy"] >= USEFUL * victim_acc
            ps = {}
            for name, pname in protocols.items():
                ps[name] = get_protocol(pname).run(a, out, False, None)[0]["p_value"]
                null[name].append(exact_null_pvalues(a, [out], protocol=pname, draws=args.null_splits,
                                                     seed=seed * 1000 + len(rows)).ravel())
            rows.append((entry, seed, fid["agreement"], counts, ps))
            mark = "counts" if counts else ""
            print(f"{entry.title[:48]:48s} #{seed} {entry.kind:8s} {fid['agreement']:.2f} {mark:6s} "
                  + " ".join(f"{n}={p:.1e}" for n, p in ps.items()), flush=True)
    print(f"\n== {len(rows)} suspects, {time.perf_counter() - t0:.0f} s")
    thefts = [r for r in rows if r[3]]
    innocents = [r for r in rows if r[0].kind == "innocent"]
    for name in SCORES:
        tp1 = np.mean([r[4][name] < 0.01 for r in thefts]) if thefts else float("nan")
        tp3 = np.mean([r[4][name] < 0.001 for r in thefts]) if thefts else float("nan")
        fp1 = np.mean([r[4][name] < 0.01 for r in innocents]) if innocents else float("nan")
        rates = rejection_rates(np.concatenate(null[name]), (0.05, 0.01, 0.001))
        print(f"{name:12s} thefts caught at 0.01 {tp1:.3f} / 0.001 {tp3:.3f} ({len(thefts)}), innocents at 0.01 "
              f"{fp1:.3f} ({len(innocents)}); exact null {sum(len(x) for x in null[name])} tests: "
              f"P(p<0.05) = {rates[0.05]:.4f}, P(p<0.01) = {rates[0.01]:.4f}, P(p<0.001) = {rates[0.001]:.4f}")
        groups = sorted({r[0].group for r in thefts})
        print("   " + "; ".join(f"{g}: {sum(r[4][name] < 0.01 for r in thefts if r[0].group == g)}/"
                                f"{sum(1 for r in thefts if r[0].group == g)}" for g in groups))


if __name__ == "__main__":
    main()
