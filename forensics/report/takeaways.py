"""One plain-language sentence per figure, computed from the same data as the figure (:func:`takeaway`), so a reader
gets what a figure shows before reading it."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..audit.opened import Audit
from ..audit.verdict import Verdict, format_p
from .figures import meta_scores, output_differences, pca_projection
from .gallery import loss_text
from .style import FIGURE_NAMES, compared_suspects, join_names
from .verdict_figures import membership_flagged, membership_unit, stratum_gaps


def _verb_s(n: int) -> str:
    """The verb's -s for a subject of ``n`` items ('it fits', 'they fit')."""
    return "s" if n == 1 else ""


def _opening(n: int) -> str:
    return f"Of the {n} suspects, " if n > 1 else "The suspect "


def _takeaway_pvalue(verdicts: Sequence[Verdict], alpha: float, protocol: str | None = None) -> str:
    rs = [(v.suspect, r) for v in verdicts if (r := v.under(protocol, alpha)) is not None]
    if not rs:
        return "No suspect has been verified under this protocol yet."
    hit = sorted([(n, r) for n, r in rs if r.stolen], key=lambda t: t[1].p_value)
    clear = [r for _, r in rs if not r.stolen]
    n = len(rs)
    if not hit:
        if n == 1:
            return (f"The suspect {rs[0][0]} has p = {format_p(rs[0][1].p_value)}, not below alpha = {alpha:g}: no "
                    "evidence that it was derived from your model.")
        return (f"None of the {n} suspects has a p-value below alpha = {alpha:g} (smallest p = "
                f"{format_p(min(r.p_value for _, r in rs))}): no evidence that any was derived from your model.")
    names = join_names([f"{name} (p = {format_p(r.p_value)})" for name, r in hit])
    s = (f"{_opening(n)}{names} {'has' if len(hit) == 1 else 'have'} a p-value below alpha = {alpha:g}: evidence that "
         f"{'it was' if len(hit) == 1 else 'they were'} derived from your model")
    if clear:
        s += (f"; {'the other' if len(clear) == 1 else f'the other {len(clear)}'} show{_verb_s(len(clear))} "
              f"no evidence ({'p' if len(clear) == 1 else 'smallest p'} = {format_p(min(r.p_value for r in clear))})")
    return s + "."


def _takeaway_membership(verdicts: Sequence[Verdict], alpha: float | None = None) -> str:
    shown = [v for v in verdicts if "membership" in v.evidence]
    if not shown:
        return "No suspect has membership evidence (it needs the held-out data)."
    units = {membership_unit(v) for v in shown}
    unit = units.pop() if len(units) == 1 else "nats or error rate"
    hit = [v for v in shown if membership_flagged(v, alpha)]
    clear = [v for v in shown if not membership_flagged(v, alpha)]
    worst = max((abs(g) for v in clear for g in stratum_gaps(v)[1]), default=0.0)
    if not hit:
        who = "No suspect fits" if len(shown) > 1 else f"The suspect {shown[0].suspect} does not fit"
        return (f"{who} the victim's training samples clearly better than unseen ones: every gap stays within "
                f"{worst:.2f} {unit} of zero.")
    peaks = []
    hard = True
    for v in hit:
        x, y = stratum_gaps(v)
        k = int(np.argmax(y))
        peaks.append(f"{y[k]:.2f}" + (f" {membership_unit(v)}" if unit == "nats or error rate" else ""))
        hard &= x[k] > (2 * len(x)) // 3
    s = (f"{_opening(len(shown))}{join_names([v.suspect for v in hit])} fit{_verb_s(len(hit))} the victim's "
         f"training samples better than unseen ones{', most in the hardest strata' if hard else ''} "
         f"(largest gap {join_names(peaks)}"
         f"{'' if unit == 'nats or error rate' else ' ' + unit})")
    if clear:
        s += (f"; {'the other stays' if len(clear) == 1 else f'the other {len(clear)} stay'} within {worst:.2f} "
              f"{unit} of zero in every stratum")
    return s + "."


def _closeness(items: Sequence[tuple[Verdict, float, float]]) -> str:
    """A sentence from (suspect, distance to the victim, distance to the benign shadow) triples: which reference
    each suspect responds to D_s like, and whether that agrees with the verdicts."""
    near_v = [(v, dv, db) for v, dv, db in items if dv < db]
    near_b = [(v, dv, db) for v, dv, db in items if dv >= db]

    def names(group):
        return join_names([v.suspect for v, _, _ in group])

    def dists(group):
        return join_names([f"{dv:.1f} vs {db:.1f}" for _, dv, db in group]) + " logits"

    flagged_v = [v.suspect for v, _, _ in near_v if v.stolen]
    if any(not v.stolen for v, _, _ in near_v):
        both = "both " if len(near_v) == 2 == len(items) else "all of " if len(near_v) == len(items) > 2 else ""
        if len(near_v) == 1:
            though = "though it shows no evidence of derivation"
        else:
            who = "only " + join_names(flagged_v) if flagged_v else "none"
            though = f"though {who} show{_verb_s(max(1, len(flagged_v)))} evidence of derivation"
        out = (f"On D_s, {both}{names(near_v)} respond{_verb_s(len(near_v))} more like the victim than like the benign "
               f"shadow (median distance {dists(near_v)}), {though}")
        if near_b:
            out += f", and {names(near_b)} like the benign shadow ({dists(near_b)})"
        return out + (": these features alone do not separate derived from innocent models here, the membership "
                      "test decides.")
    parts = [f"{names(g)} respond{_verb_s(len(g))} like {ref} (median distance {dists(g)})"
             for g, ref in ((near_v, "the victim"), (near_b, "the benign shadow")) if g]
    agree = all(v.stolen for v, _, _ in near_v) and not any(v.stolen for v, _, _ in near_b)
    return "On D_s, " + " and ".join(parts) + (", in line with the verdicts." if agree else ".")


def _takeaway_output_difference(audit: Audit, verdicts: Sequence[Verdict]) -> str:
    shown, _ = compared_suspects(verdicts)
    d = output_differences(audit, shown)
    if not shown:
        gap = float(np.median(np.linalg.norm(d["victim"] - d["benign shadow"], axis=1)))
        return (f"The victim's output differences lie a median {gap:.1f} logits from the benign shadow's on each D_s "
                "image: the signal the meta-classifier learns.")
    items = [(v, float(np.median(np.linalg.norm(d[v.suspect] - d["victim"], axis=1))),
              float(np.median(np.linalg.norm(d[v.suspect] - d["benign shadow"], axis=1)))) for v in shown]
    return _closeness(items)


def _takeaway_projection(audit: Audit, verdicts: Sequence[Verdict]) -> str:
    shown, _ = compared_suspects(verdicts)
    _, proj = pca_projection(audit, output_differences(audit, shown))
    if not shown:
        gap = float(np.median(np.linalg.norm(proj["victim"] - proj["benign shadow"], axis=1)))
        return (f"The victim's and the benign shadow's dots for the same image lie a median {gap:.1f} logits apart: "
                "each suspect's dots are placed against these two clouds.")
    groups: dict[bool, list[tuple[str, float, float]]] = {True: [], False: []}
    for v in shown:
        dv = float(np.median(np.linalg.norm(proj[v.suspect] - proj["victim"], axis=1)))
        db = float(np.median(np.linalg.norm(proj[v.suspect] - proj["benign shadow"], axis=1)))
        groups[dv < db].append((v.suspect, dv, db))
    parts = []
    for g, ref, other in ((groups[True], "victim's", "benign shadow's"),
                          (groups[False], "benign shadow's", "victim's")):
        if g:
            dists = join_names([f"{dv:.1f} vs {db:.1f}" for _, dv, db in g])
            parts.append(f"{join_names([n + chr(39) + 's' for n, _, _ in g])} dots lie nearer the {ref} than the "
                         f"{other} (median distance per image {dists} logits)")
    return "In the projection, " + " while ".join(parts) + "."


def _takeaway_meta_scores(audit: Audit, verdicts: Sequence[Verdict]) -> str:
    shown = [v for v in verdicts if v.per_sample.get("ds_logits")]
    sc = {k: float(np.median(p)) for k, p in meta_scores(audit, shown).items()}
    if not shown:
        return (f"The meta-classifier gives the victim's held-out D_s rows a median P(stolen) of {sc['victim']:.2f} "
                f"and the benign shadow's {sc['benign shadow']:.2f}.")
    like_v = [v for v in shown if abs(sc[v.suspect] - sc["victim"]) < abs(sc[v.suspect] - sc["benign shadow"])]
    like_b = [v for v in shown if v not in like_v]

    def span(group):
        lo, hi = min(sc[v.suspect] for v in group), max(sc[v.suspect] for v in group)
        return f"{lo:.2f}" if hi - lo < 0.005 else f"{lo:.2f}–{hi:.2f}"

    parts = []
    if like_v:
        every = not like_b and len(shown) > 2
        who = "every suspect shown" if every else join_names([v.suspect for v in like_v])
        verb = "score" + _verb_s(1 if every else len(like_v))
        parts.append(f"{who} {verb} like the victim (median P(stolen) {span(like_v)}, the victim {sc['victim']:.2f})")
    if like_b:
        parts.append(f"{join_names([v.suspect for v in like_b])} like the benign shadow ({span(like_b)}, the shadow "
                     f"{sc['benign shadow']:.2f})")
    s = "On the held-out D_s rows, " + " and ".join(parts)
    clear = [v for v in like_v if not v.stolen]
    if clear:
        who = "the suspect" if len(shown) == 1 else (
            f"{len(clear)} of those" if len(clear) > 2 else join_names([v.suspect for v in clear]))
        s += (f", yet {who} show{_verb_s(len(clear))} no evidence of derivation, so this score supports the verdict "
              "but cannot decide it")
    elif all(v.stolen for v in like_v) and not any(v.stolen for v in like_b):
        s += ", as the verdicts say"
    return s + "."


def _takeaway_loss_order(audit: Audit) -> str:
    loss = audit.loss_order.loss
    ds = loss[audit.loss_order.ds_rows]
    return (f"The victim fits its {len(ds)} D_s samples (its lowest-loss {audit.config.gamma:.0%}) with a loss of at "
            f"most {loss_text(float(ds.max()))} nats, against a median of {loss_text(float(np.median(loss)))} "
            f"nats over all {len(loss)} private samples.")


def _takeaway_training(audit: Audit) -> str:
    parts = [f"the {name.replace('_', ' ')}'s from {h['epochs'][0]['loss']:.2f} to {h['epochs'][-1]['loss']:.2f} nats "
             f"in {len(h['epochs'])} epochs" for name, h in audit.shadows.histories.items() if h and h.get("epochs")]
    if not parts:
        return "No training history was recorded for the shadow models."
    return f"Training loss fell: {join_names(parts, limit=5)}."


def takeaway(name: str, audit: Audit, verdicts: Sequence[Verdict], alpha: float | None = None, *,
             protocol: str | None = None) -> str:
    """One plain-language sentence, computed from the data, that says what figure ``name`` shows:
    one of :data:`FIGURE_NAMES` (``alpha`` defaults to the audit's)."""
    alpha = audit.config.alpha if alpha is None else alpha
    if name == "pvalue":
        return _takeaway_pvalue(verdicts, alpha, protocol)
    if name == "membership":
        return _takeaway_membership(verdicts, alpha)
    if name == "output_difference":
        return _takeaway_output_difference(audit, verdicts)
    if name == "projection":
        return _takeaway_projection(audit, verdicts)
    if name == "meta_scores":
        return _takeaway_meta_scores(audit, verdicts)
    if name == "loss_order":
        return _takeaway_loss_order(audit)
    if name == "training":
        return _takeaway_training(audit)
    raise ValueError(f"unknown figure {name!r}; choose one of {FIGURE_NAMES}")
