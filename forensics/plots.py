"""Plotly figures of an audit, shared by the dashboard and the HTML report, and their takeaways.

Every figure function takes core objects (an :class:`~forensics.audit.Audit`, verdicts) and returns a
``plotly.graph_objects.Figure`` with a title and labelled axes (units in brackets).  :func:`takeaway`
says in one plain-language sentence, computed from the same data, what a figure shows.  Nothing here
depends on a UI.

Suspects are coloured by what the audit concluded: warm colours for suspects with evidence of
derivation (p < alpha), cool ones for suspects without; a suspect's known kind (the demo's "stolen" /
"innocent"), when given through ``kinds``, is written next to its name.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .audit import Audit
from .meta import STOLEN, output_difference
from .metrics import per_sample_loss
from .verify import Verdict, format_p

PALETTE = {"victim": "#c0392b", "benign shadow": "#2e86c1", "poisoned shadow": "#7d3c98",
           "members": "#c0392b", "controls": "#5d6d7e"}
# D3 category10, reordered so that suspects avoid the victim's red and the benign shadow's blue
SUSPECT_COLORS = ["#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                  "#1f77b4", "#d62728"]
# the verdict badges' colours (dashboard, report)
VERDICT_COLORS = {True: "#b3261e", False: "#1b6e3a"}
# suspects in figures that also show the victim and the benign shadow: warm = evidence, cool = none
FLAGGED_COLORS = ["#ff7f0e", "#e377c2", "#8c564b", "#9467bd"]
CLEAR_COLORS = ["#2ca02c", "#17becf", "#bcbd22", "#7f7f7f"]
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), font=dict(size=13),
              legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02))
MAX_COMPARED = 4     # suspects drawn in the per-class, projection figures; beyond: the default pair
MAX_CLASS_PANELS = 10
# p-values the evidence axis may be labelled with, largest first
P_TICKS = (1.0, 0.1, 0.01, 1e-3, 1e-5, 1e-10, 1e-20, 1e-50, 1e-100, 1e-200, 1e-300)
# the figures of forensics.report.audit_figures, in its order (what takeaway() accepts for them)
FIGURE_NAMES = ("pvalue", "membership", "loss_order", "output_difference", "projection", "meta_scores", "training")


def _color(i: int) -> str:
    return SUSPECT_COLORS[i % len(SUSPECT_COLORS)]


def _join(names: Sequence[str], limit: int = 4) -> str:
    """'a', 'a and b', 'a, b and c'; beyond ``limit`` names, 'a, b, c and 3 more'."""
    names = list(names)
    if len(names) > limit:
        names = names[:limit - 1] + [f"{len(names) - limit + 1} more"]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _flagged(v: Verdict, alpha: float | None = None, protocol: str | None = None) -> bool:
    r = v.under(protocol, alpha)
    return bool(v.stolen if r is None else r.stolen)


def suspect_colors(verdicts: Sequence[Verdict], alpha: float | None = None) -> dict[str, str]:
    """Suspect name -> colour: warm for suspects with evidence at ``alpha`` (default: each verdict's), cool
    for the others, so that the two groups read apart beside the victim's red and the benign shadow's blue."""
    out, n = {}, {True: 0, False: 0}
    for v in verdicts:
        f = _flagged(v, alpha)
        pal = FLAGGED_COLORS if f else CLEAR_COLORS
        out[v.suspect] = pal[n[f] % len(pal)]
        n[f] += 1
    return out


def _label(v: Verdict, kinds: Mapping[str, str | None] | None = None) -> str:
    kind = (kinds or {}).get(v.suspect)
    return f"{v.suspect} · p = {format_p(v.p_value)}" + (f" · known {kind}" if kind else "")


def default_pair(verdicts: Sequence[Verdict]) -> list[str]:
    """The suspects to compare by default: the one with the smallest p-value (the likeliest derived) and the
    one with the largest (the likeliest innocent), among those that answered with logits."""
    vs = [v for v in verdicts if v.per_sample.get("ds_logits")]
    if not vs:
        return []
    lo = min(vs, key=lambda v: v.p_value)
    hi = max(vs, key=lambda v: v.p_value)
    return [lo.suspect] if lo is hi else [lo.suspect, hi.suspect]


def _compared(verdicts: Sequence[Verdict]) -> tuple[list[Verdict], bool]:
    """The suspects with logits to draw: all of them up to MAX_COMPARED, else the default pair (and True)."""
    vs = [v for v in verdicts if v.per_sample.get("ds_logits")]
    if len(vs) <= MAX_COMPARED:
        return vs, False
    pair = default_pair(vs)
    return [v for v in vs if v.suspect in pair], True


def _pair_note(thinned: bool) -> str:
    return "<br>Shown: the suspects with the smallest and the largest p-value." if thinned else ""


def _head(fig: go.Figure, title: str, subtitle: str, height: int, top: int, legend: str | None = "top",
          bottom: int = 60) -> None:
    """The house layout with a title, a one-line subtitle and the legend in fixed pixel places: under the
    subtitle (``legend="top"``), under the x axis (``"bottom"``) or none; ``top``/``bottom``: margins [px] for a
    one-line subtitle (each further line, after a ``<br>``, adds its height)."""
    extra = 17 * subtitle.count("<br>")
    height, top = height + extra, top + extra
    fig.update_layout(**LAYOUT)
    fig.update_layout(title=dict(text=title, subtitle=dict(text=subtitle, font=dict(size=13, color="#555")),
                                 yref="container", y=1 - 14 / height, yanchor="top", x=0.01, xanchor="left"),
                      height=height, margin=dict(l=70, r=20, t=top, b=bottom), showlegend=legend is not None)
    if legend == "top":
        fig.update_layout(legend=dict(orientation="h", yref="container", y=1 - (78 + extra) / height, yanchor="top",
                                      xanchor="left", x=0.01, title_text=""))
    elif legend == "bottom":
        fig.update_layout(legend=dict(orientation="h", yref="container", y=0.0, yanchor="bottom", xanchor="left",
                                      x=0.01, title_text=""))


# ---------------------------------------------------------------------------------------------
# stages 1 and 2


def loss_order_figure(audit: Audit) -> go.Figure:
    """The victim's sorted per-sample loss, with the D_s cut (gamma) and the benign-shadow cut (lambda)."""
    loss = np.sort(audit.loss_order.loss)
    n = len(loss)
    fig = go.Figure(go.Scatter(x=np.arange(1, n + 1), y=np.maximum(loss, 1e-6), mode="lines",
                               line=dict(color=PALETTE["victim"], width=2), name="victim loss"))
    n_s = len(audit.loss_order.ds_rows)
    n_l = int(round(audit.config.lam * n))
    fig.add_vline(x=n_s, line=dict(color="#7d3c98", dash="dash"),
                  annotation_text=f"D_s: {n_s} lowest-loss samples (gamma={audit.config.gamma})")
    fig.add_vline(x=n_l, line=dict(color="#2e86c1", dash="dot"),
                  annotation_text=f"benign shadow skips these {n_l} (lambda={audit.config.lam})",
                  annotation_position="bottom right")
    fig.update_layout(title="Loss order of the victim on its private data", xaxis_title="rank (lowest loss first)",
                      yaxis_title="cross-entropy [nats, log scale]", yaxis_type="log", yaxis_exponentformat="power",
                      **LAYOUT)
    return fig


def training_curves_figure(histories: dict[str, dict | None]) -> go.Figure:
    """Training loss per epoch of every model the audit trained."""
    fig = go.Figure()
    for i, (name, h) in enumerate((k, v) for k, v in histories.items() if v and v.get("epochs")):
        ep = [e["epoch"] for e in h["epochs"]]
        fig.add_trace(go.Scatter(x=ep, y=[e["loss"] for e in h["epochs"]], mode="lines+markers",
                                 name=name.replace("_", " "), line=dict(color=_color(i))))
    fig.update_layout(title="Training loss of the shadow models", xaxis_title="epoch", xaxis_dtick=1,
                      yaxis_title="training loss [nats]", **LAYOUT)
    return fig


# ---------------------------------------------------------------------------------------------
# the Holmes features: O = model - poisoned shadow on clean D_s


def _differences(audit: Audit, verdicts: Sequence[Verdict]) -> dict[str, np.ndarray]:
    logits = audit.meta.logits_ds
    p = logits["poisoned"]
    out = {"victim": output_difference(logits["victim"], p),
           "benign shadow": output_difference(logits["benign"], p)}
    for v in verdicts:
        if v.per_sample.get("ds_logits"):
            out[v.suspect] = output_difference(np.asarray(v.per_sample["ds_logits"]), p)
    return out


def _model_colors(verdicts: Sequence[Verdict]) -> dict[str, str]:
    return {"victim": PALETTE["victim"], "benign shadow": PALETTE["benign shadow"], **suspect_colors(verdicts)}


def _class_panels(audit: Audit, o_victim: np.ndarray, o_benign: np.ndarray) -> list[int]:
    """The classes (logit dimensions) to draw: all up to MAX_CLASS_PANELS, else those where the victim's and
    the benign shadow's mean output differences differ most (the trigger's target class always)."""
    k = o_victim.shape[1]
    if k <= MAX_CLASS_PANELS:
        return list(range(k))
    gap = np.abs(o_victim.mean(0) - o_benign.mean(0))
    gap[audit.config.target_class] = np.inf
    return sorted(np.argsort(-gap)[:MAX_CLASS_PANELS].tolist())


def output_difference_figure(audit: Audit, verdicts: Sequence[Verdict] = (), *,
                             kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """Small multiples, one panel per class (logit dimension): the distribution over D_s of the output
    differences O = model - poisoned shadow of the victim, the benign shadow and the suspects (at most
    MAX_COMPARED; given more, the default pair), on one shared y axis."""
    from plotly.subplots import make_subplots

    shown, thinned = _compared(verdicts)
    diffs = _differences(audit, shown)
    colors = _model_colors(shown)
    names = {"victim": "victim", "benign shadow": "benign shadow", **{v.suspect: _label(v, kinds) for v in shown}}
    classes = _class_panels(audit, diffs["victim"], diffs["benign shadow"])
    cols = min(5, len(classes))
    rows = math.ceil(len(classes) / cols)
    tgt = audit.config.target_class
    titles = [audit.private.classes[c] + (" (trigger target)" if c == tgt else "") for c in classes]
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes="all", subplot_titles=titles,
                        horizontal_spacing=0.02, vertical_spacing=0.12)
    for j, c in enumerate(classes):
        r, col = j // cols + 1, j % cols + 1
        for name, o in diffs.items():
            fig.add_trace(go.Box(y=o[:, c], x=[names[name]] * len(o), name=names[name], legendgroup=name,
                                 showlegend=j == 0, marker_color=colors[name], boxpoints=False,
                                 line=dict(width=1.5), hovertemplate=f"{names[name]}<br>%{{y:.2f}} logits"
                                 "<extra></extra>"), row=r, col=col)
        q1, q3 = np.percentile(diffs["victim"][:, c], [25, 75])
        fig.add_hrect(y0=q1, y1=q3, fillcolor=PALETTE["victim"], opacity=0.09, line_width=0, layer="below",
                      row=r, col=col)
        fig.update_xaxes(showticklabels=False, row=r, col=col)
        fig.add_hline(y=0, line=dict(color="#999", width=1), row=r, col=col)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text="O [logits]", row=r, col=1)
    _head(fig, "Output differences on D_s, per class (model minus poisoned shadow)",
          f"Each box: one model's O on that class's logit over the {len(diffs['victim'])} D_s images; red band: the "
          "victim's middle half. Boxes in the band: answers D_s like the victim." + _pair_note(thinned),
          height=170 + 240 * rows, top=150, bottom=20)
    fig.update_layout(boxgap=0.25)
    fig.update_annotations(font_size=12)
    return fig


def _projection(audit: Audit, diffs: dict[str, np.ndarray]):
    from sklearn.decomposition import PCA

    base = np.concatenate([diffs["victim"], diffs["benign shadow"]])
    pca = PCA(n_components=2, random_state=audit.config.seed).fit(base)
    return pca, {name: pca.transform(o) for name, o in diffs.items()}


def _grid(n: int) -> tuple[int, int]:
    """(rows, cols) of ``n`` small multiples: side by side up to 3, then 2 or 3 to a row."""
    cols = n if n <= 3 else (2 if n == 4 else 3)
    return max(1, math.ceil(n / max(cols, 1))), max(cols, 1)


def projection_figure(audit: Audit, verdicts: Sequence[Verdict] = (), *,
                      kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """The output differences on 2 principal components (fitted on the victim and the benign shadow), one panel
    per suspect (at most MAX_COMPARED; given more, the default pair): the victim's and the benign shadow's D_s
    images as light clouds, the suspect's on top, one dot per image; shared axes."""
    from plotly.subplots import make_subplots

    shown, thinned = _compared(verdicts)
    diffs = _differences(audit, shown)
    pca, proj = _projection(audit, diffs)
    colors = _model_colors(shown)
    rows, cols = _grid(len(shown))
    titles = [f"<b style='color:{colors[v.suspect]}'>{v.suspect}</b><br><span style='color:#555'>p = "
              f"{format_p(v.p_value)} · {'evidence of derivation' if v.stolen else 'no evidence'}"
              + (f" · known {kinds[v.suspect]}" if (kinds or {}).get(v.suspect) else "") + "</span>"
              for v in shown] or ["victim and benign shadow"]
    fig = make_subplots(rows=rows, cols=cols, shared_xaxes="all", shared_yaxes="all", subplot_titles=titles,
                        horizontal_spacing=0.04, vertical_spacing=0.1 + 0.1 / rows)
    for j, v in enumerate(shown or [None]):
        r, c = j // cols + 1, j % cols + 1
        for name in ("victim", "benign shadow"):
            z = proj[name]
            fig.add_trace(go.Scatter(x=z[:, 0], y=z[:, 1], mode="markers", name=f"{name}'s D_s images (reference)",
                                     legendgroup=name, showlegend=j == 0,
                                     marker=dict(size=8, color=colors[name], opacity=0.28),
                                     hovertemplate=f"{name}<extra></extra>"), row=r, col=c)
        if v is None:
            continue
        z, col = proj[v.suspect], colors[v.suspect]
        fig.add_trace(go.Scatter(x=z[:, 0], y=z[:, 1], mode="markers", name=v.suspect, showlegend=False,
                                 marker=dict(size=7, color=col, line=dict(color="#fff", width=0.8)),
                                 hovertemplate=f"{v.suspect}<extra></extra>"), row=r, col=c)
    ev = pca.explained_variance_ratio_ * 100
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text=f"PC 1 [{ev[0]:.0f}% of variance, logits]", row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=f"PC 2 [{ev[1]:.0f}% of variance, logits]", row=r, col=1)
    _head(fig, "Output differences projected on 2 principal components (fitted on victim and benign shadow)",
          "One dot per D_s image, the suspect's in its panel's colour. Suspect dots on the victim's (red): it answers "
          "D_s like the victim;<br>on the benign shadow's (blue): like an independent model." + _pair_note(thinned),
          height=170 + 380 * rows, top=148)
    fig.update_annotations(font_size=13)
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"


def _meta_scores(audit: Audit, verdicts: Sequence[Verdict]) -> dict[str, np.ndarray]:
    rows = audit.meta.split["verify"]
    return {name: audit.meta.classifier.predict_proba(o[rows])[:, STOLEN]
            for name, o in _differences(audit, verdicts).items()}


def meta_scores_figure(audit: Audit, verdicts: Sequence[Verdict] = (), *,
                       kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """The meta-classifier's P(stolen) on the held-out verification rows of D_s, one box per model."""
    shown = [v for v in verdicts if v.per_sample.get("ds_logits")]
    scores = _meta_scores(audit, shown)
    colors = _model_colors(shown)
    names = {"victim": "victim (stolen by definition)", "benign shadow": "benign shadow (innocent by definition)",
             **{v.suspect: _label(v, kinds) for v in shown}}
    fig = go.Figure()
    for name, p in scores.items():
        fig.add_trace(go.Box(x=p, name=names[name], boxpoints="all", jitter=0.4, pointpos=0, orientation="h",
                             marker=dict(size=5, color=colors[name]), line=dict(width=1.5), showlegend=False,
                             hovertemplate="P(stolen) = %{x:.3f}<extra></extra>"))
    fig.add_vline(x=0.5, line=dict(color="#555", dash="dash"), annotation_text="0.5: undecided",
                  annotation_position="top")
    n = len(audit.meta.split["verify"])
    _head(fig, f"Meta-classifier scores on {n} held-out D_s samples",
          "Right: scored like the victim; left: like the benign shadow (trained without D_s). Suspects in warm colours "
          "show evidence of derivation, in cool colours none.",
          height=max(360, 140 + 48 * len(scores)), top=110, legend=None)
    fig.update_layout(xaxis_title="P(stolen) [probability]", xaxis_range=[0, 1], yaxis_autorange="reversed")
    return fig


# ---------------------------------------------------------------------------------------------
# stage 3: the verdicts


def _gaps(v: Verdict) -> tuple[list[int], list[float]]:
    st = v.evidence["membership"]["strata"]
    return [r["stratum"] + 1 for r in st], [r["control_mean"] - r["member_mean"] for r in st]


def _unit(v: Verdict) -> str:
    """What the membership gaps of a verdict are measured in: loss (logits) or error rate (labels only)."""
    return "error rate" if v.evidence["membership"]["score"] == "error" else "nats"


def _membership_flagged(v: Verdict, alpha: float | None) -> bool:
    return v.evidence["membership"]["p_value"] < (v.alpha if alpha is None else alpha)


def membership_figure(verdicts: Sequence[Verdict], *, alpha: float | None = None,
                      kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """Small multiples, one panel per suspect: per difficulty stratum, how much better the suspect fits the
    victim's training samples (members) than unseen samples (controls); the other suspects in light grey.

    The y value is the controls' mean loss minus the members' mean loss (or error rates with labels only): 0
    for a model that cannot tell the victim's training samples from unseen ones.  The panel's colour is the
    membership test's verdict at ``alpha`` (default: each verdict's)."""
    from plotly.subplots import make_subplots

    shown = [v for v in verdicts if "membership" in v.evidence]
    units = {_unit(v) for v in shown}
    mixed = len(units) > 1  # loss (logits) and error rates (labels only) are not drawn on one scale
    unit = units.pop() if len(units) == 1 else "nats"
    cols = max(1, min(3, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    titles = []
    for v in shown:
        f = _membership_flagged(v, alpha)
        kind = (kinds or {}).get(v.suspect)
        titles.append(f"<b style='color:{VERDICT_COLORS[f]}'>{v.suspect}</b><br>"
                      f"<span style='color:{VERDICT_COLORS[f]}'>p = {format_p(v.evidence['membership']['p_value'])}"
                      f" · {'evidence of derivation' if f else 'no evidence'}</span>"
                      + (f"<span style='color:#777'> · known {kind}</span>" if kind else "")
                      + (f" · in {_unit(v)}" if mixed else ""))
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=False if mixed else "all", shared_xaxes="all",
                        subplot_titles=titles or None,
                        horizontal_spacing=0.04, vertical_spacing=0.2 if rows > 1 else 0.1)
    gaps = {v.suspect: _gaps(v) for v in shown}
    for j, v in enumerate(shown):
        r, c = j // cols + 1, j % cols + 1
        for other in shown:  # context: every other suspect (on the same scale), light
            if other is not v and _unit(other) == _unit(v):
                x, y = gaps[other.suspect]
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color="#d5d8dc", width=1),
                                         showlegend=False, hoverinfo="skip"), row=r, col=c)
        x, y = gaps[v.suspect]
        color = VERDICT_COLORS[_membership_flagged(v, alpha)]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line=dict(color=color, width=3), showlegend=False,
                                 fill="tozeroy", fillcolor=_rgba(color, 0.12), name=v.suspect,
                                 hovertemplate=f"{v.suspect}<br>stratum %{{x}}: %{{y:.3f}} {unit}<extra></extra>"),
                      row=r, col=c)
        fig.add_hline(y=0, line=dict(color="#555", dash="dash", width=1), row=r, col=c)
        fig.update_xaxes(dtick=1 if len(x) <= 10 else None, row=r, col=c)
    for j in range(max(0, len(shown) - cols), len(shown)):  # the lowest panel of each column: its axis labelled
        fig.update_xaxes(title_text="difficulty stratum [1 = easiest]", showticklabels=True, row=j // cols + 1,
                         col=j % cols + 1)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=f"controls minus members [{'see panel' if mixed else unit}]", row=r, col=1)
    _head(fig, "How much better each suspect fits the victim's training samples than unseen ones",
          "Above the dashed zero line: it fits the victim's training samples (members) better than unseen ones "
          "(controls).<br>Grey: the other suspects, for comparison.", height=120 + 250 * rows, top=123, legend=None)
    fig.update_annotations(font_size=13)
    return fig


def _evidence_axis(p: float) -> float:
    """The p-value axis: log10(1 + -log10 p), monotone, 0 at p = 1, readable from 0.1 down to 1e-300."""
    return float(np.log10(1.0 + -np.log10(min(max(p, 1e-300), 1.0))))


def _p_tick_text(p: float) -> str:
    return "1" if p == 1 else f"{p:g}" if p >= 1e-3 else f"1e-{round(-math.log10(p))}"


def p_ticks(p_min: float) -> tuple[list[float], list[str]]:
    """Tick positions (on the evidence axis) and texts for p-values from 1 down to ``p_min``."""
    ps = []
    for t in P_TICKS:
        ps.append(t)
        if t <= p_min:
            break
    return [_evidence_axis(t) for t in ps], [_p_tick_text(t) for t in ps]


def pvalue_figure(verdicts: Sequence[Verdict], alpha: float, protocol: str | None = None, *,
                  kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """One horizontal bar per suspect under ``protocol`` (default: each verdict's own): the longer the bar, the
    smaller the p-value; the evidence axis is labelled with p-values, the alpha line marks the verdict."""
    shown = [(v.suspect, r) for v in verdicts if (r := v.under(protocol, alpha)) is not None]
    names = [name for name, _ in shown]
    p_min = min((r.p_value for _, r in shown), default=1.0)
    tickvals, ticktext = p_ticks(min(p_min, alpha / 10))
    fig = go.Figure()
    for stolen, legend in ((True, f"evidence of derivation (p < {alpha:g})"),
                           (False, f"no evidence (p ≥ {alpha:g})")):
        group = [(n, r) for n, r in shown if r.stolen == stolen]
        kind = [(kinds or {}).get(n) for n, _ in group]
        fig.add_trace(go.Bar(
            y=[n for n, _ in group], x=[_evidence_axis(r.p_value) for _, r in group], orientation="h", name=legend,
            marker_color=VERDICT_COLORS[stolen], text=[f"p = {format_p(r.p_value)}" for _, r in group],
            textposition="outside", cliponaxis=False, textfont=dict(size=13),
            customdata=[[format_p(r.p_value), k or "unknown"] for (_, r), k in zip(group, kind, strict=True)],
            hovertemplate="%{y}<br>p = %{customdata[0]}<br>known kind: %{customdata[1]}<extra></extra>"))
    a = _evidence_axis(alpha)
    top = tickvals[-1] * 1.12 + 0.05
    fig.add_vrect(x0=a, x1=top, fillcolor=VERDICT_COLORS[True], opacity=0.05, line_width=0, layer="below")
    fig.add_vline(x=a, line=dict(color="#333", dash="dash", width=1.5), annotation_text=f"alpha = {alpha:g}",
                  annotation_position="top", annotation_font_size=12)
    _head(fig, "Evidence per suspect (longer bar = smaller p-value = stronger evidence of derivation)",
          "Right of the dashed alpha line: the suspect fits the victim's training samples better than chance allows.",
          height=190 + 46 * max(1, len(names)), top=100, legend="bottom", bottom=100)
    fig.update_layout(
        barmode="overlay", bargap=0.35, margin_l=20, margin_r=30,
        xaxis=dict(title="p-value [log-log scale; smaller to the right]", tickvals=tickvals, ticktext=ticktext,
                   range=[0, top], showgrid=True, zeroline=True, zerolinecolor="#999"),
        yaxis=dict(title="", categoryorder="array", categoryarray=names, autorange="reversed", automargin=True))
    return fig


# ---------------------------------------------------------------------------------------------
# the D_s gallery


@dataclass(frozen=True)
class GalleryItem:
    row: int            # row in the private data
    label: str          # its class
    value: float        # what the gallery shows and sorts by
    caption: str


GALLERY_METRICS = ("suspect's loss", "meta-classifier P(stolen)")
GALLERY_ORDERS = ("highest first", "lowest first", "victim's loss order")


def ds_losses(audit: Audit, verdict: Verdict) -> dict[str, np.ndarray]:
    """Per D_s image (in D_s order): the suspect's, the victim's and the benign shadow's loss [nats]."""
    rows = audit.loss_order.ds_rows
    y = audit.private.labels[rows]
    return {"suspect": per_sample_loss(np.asarray(verdict.per_sample["ds_logits"], np.float64), y),
            "victim": np.asarray(audit.loss_order.loss[rows], np.float64),
            "benign shadow": per_sample_loss(audit.meta.logits_ds["benign"], y)}


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def _g(x: float) -> str:
    """A loss for people: 2 significant digits, small ones as 1.5×10⁻⁴ (no hyphen for a caption to break at)."""
    if x == 0 or x >= 0.01:
        return f"{x:.2g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def ds_p_stolen(audit: Audit) -> dict[str, np.ndarray]:
    """The meta-classifier's P(stolen) on every D_s image for the victim and the benign shadow (the references a
    suspect's ``per_sample["ds_p_stolen"]`` compares with)."""
    return {name: audit.meta.classifier.predict_proba(o)[:, STOLEN] for name, o in _differences(audit, ()).items()}


def gallery(audit: Audit, verdict: Verdict, metric: str = GALLERY_METRICS[0], order: str = GALLERY_ORDERS[0],
            n: int = 24) -> list[GalleryItem]:
    """The D_s images for one suspect (that answered with logits), with a per-image value: the suspect's loss
    on the image (its own answer against the true label, beside the victim's), or the meta-classifier's
    P(stolen) on the image's output difference."""
    rows = audit.loss_order.ds_rows
    if metric == GALLERY_METRICS[0]:
        loss = ds_losses(audit, verdict)
        vals = loss["suspect"]
        caps = [f"{_g(s)} (victim {_g(w)})" for s, w in zip(vals, loss["victim"], strict=True)]
    elif metric == GALLERY_METRICS[1]:
        vals = np.asarray(verdict.per_sample["ds_p_stolen"], np.float64)
        caps = [f"P(stolen) {p:.3f}" for p in vals]
    else:
        raise ValueError(f"unknown gallery metric {metric!r}; choose one of {GALLERY_METRICS}")
    if order == GALLERY_ORDERS[0]:
        idx = np.argsort(-vals, kind="stable")
    elif order == GALLERY_ORDERS[1]:
        idx = np.argsort(vals, kind="stable")
    else:
        idx = np.arange(len(vals))  # D_s is already the victim's lowest-loss samples, lowest first
    out = []
    for i in idx[:n]:
        row = int(rows[i])
        label = audit.private.classes[audit.private.labels[row]]
        out.append(GalleryItem(row, label, float(vals[i]), f"{label} · {caps[i]}"))
    return out


def gallery_takeaway(audit: Audit, verdict: Verdict, verdicts: Sequence[Verdict] = ()) -> str:
    """One sentence on how the suspect fits D_s, beside the victim and the benign shadow (and the suspects
    without evidence, from ``verdicts``)."""
    loss = ds_losses(audit, verdict)
    med = {k: float(np.median(x)) for k, x in loss.items()}
    n = len(loss["suspect"])
    s = (f"On these {n} D_s images, {verdict.suspect} has a median loss of {_g(med['suspect'])} nats, against "
         f"{_g(med['victim'])} for the victim and {_g(med['benign shadow'])} for the benign shadow, which never "
         "trained on them")
    clear = [v for v in verdicts if v is not verdict and not v.stolen and v.per_sample.get("ds_logits")]
    if clear:
        meds = [float(np.median(ds_losses(audit, v)["suspect"])) for v in clear]
        lo, hi = min(meds), max(meds)
        if hi < med["benign shadow"] / 10:
            rng = _g(lo) if _g(lo) == _g(hi) else f"{_g(lo)} to {_g(hi)}"
            s += (f"; suspects without evidence fit them about as well ({rng}), so D_s shows what the victim "
                  "learned best, not who copied it")
    return s + "."


# ---------------------------------------------------------------------------------------------
# takeaways: one plain-language sentence per figure, computed from the data


def _s(n: int) -> str:
    """The verb's -s for a subject of ``n`` items ('it fits', 'they fit')."""
    return "s" if n == 1 else ""


def _of(n: int) -> str:
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
    names = _join([f"{name} (p = {format_p(r.p_value)})" for name, r in hit])
    s = (f"{_of(n)}{names} {'has' if len(hit) == 1 else 'have'} a p-value below alpha = {alpha:g}: evidence that "
         f"{'it was' if len(hit) == 1 else 'they were'} derived from your model")
    if clear:
        s += (f"; {'the other' if len(clear) == 1 else f'the other {len(clear)}'} show{_s(len(clear))} no evidence "
              f"({'p' if len(clear) == 1 else 'smallest p'} = {format_p(min(r.p_value for r in clear))})")
    return s + "."


def _takeaway_membership(verdicts: Sequence[Verdict], alpha: float | None = None) -> str:
    shown = [v for v in verdicts if "membership" in v.evidence]
    if not shown:
        return "No suspect has membership evidence (it needs the held-out data)."
    units = {_unit(v) for v in shown}
    unit = units.pop() if len(units) == 1 else "nats or error rate"
    hit = [v for v in shown if _membership_flagged(v, alpha)]
    clear = [v for v in shown if not _membership_flagged(v, alpha)]
    worst = max((abs(g) for v in clear for g in _gaps(v)[1]), default=0.0)
    if not hit:
        who = "No suspect fits" if len(shown) > 1 else f"The suspect {shown[0].suspect} does not fit"
        return (f"{who} the victim's training samples clearly better than unseen ones: every gap stays within "
                f"{worst:.2f} {unit} of zero.")
    peaks = []
    hard = True
    for v in hit:
        x, y = _gaps(v)
        k = int(np.argmax(y))
        peaks.append(f"{y[k]:.2f}" + (f" {_unit(v)}" if unit == "nats or error rate" else ""))
        hard &= x[k] > (2 * len(x)) // 3
    s = (f"{_of(len(shown))}{_join([v.suspect for v in hit])} fit{_s(len(hit))} the victim's training samples "
         f"better than unseen ones{', most in the hardest strata' if hard else ''} (largest gap {_join(peaks)}"
         f"{'' if unit == 'nats or error rate' else ' ' + unit})")
    if clear:
        s += (f"; {'the other stays' if len(clear) == 1 else f'the other {len(clear)} stay'} within {worst:.2f} "
              f"{unit} of zero in every stratum")
    return s + "."


def _closeness(items: Sequence[tuple[Verdict, float, float]]) -> str:
    """A sentence from (suspect, distance to the victim, distance to the benign shadow) triples: which reference
    each suspect answers D_s like, and whether that agrees with the verdicts."""
    near_v = [(v, dv, db) for v, dv, db in items if dv < db]
    near_b = [(v, dv, db) for v, dv, db in items if dv >= db]

    def names(group):
        return _join([v.suspect for v, _, _ in group])

    def dists(group):
        return _join([f"{dv:.1f} vs {db:.1f}" for _, dv, db in group]) + " logits"

    flagged_v = [v.suspect for v, _, _ in near_v if v.stolen]
    if any(not v.stolen for v, _, _ in near_v):
        both = "both " if len(near_v) == 2 == len(items) else "all of " if len(near_v) == len(items) > 2 else ""
        if len(near_v) == 1:
            though = "though it shows no evidence of derivation"
        else:
            who = "only " + _join(flagged_v) if flagged_v else "none"
            though = f"though {who} show{_s(max(1, len(flagged_v)))} evidence of derivation"
        out = (f"On D_s, {both}{names(near_v)} answer{_s(len(near_v))} more like the victim than like the benign "
               f"shadow (median distance {dists(near_v)}), {though}")
        if near_b:
            out += f", and {names(near_b)} like the benign shadow ({dists(near_b)})"
        return out + (": these features alone do not separate derived from innocent models here, the membership "
                      "test decides.")
    parts = [f"{names(g)} answer{_s(len(g))} like {ref} (median distance {dists(g)})"
             for g, ref in ((near_v, "the victim"), (near_b, "the benign shadow")) if g]
    agree = all(v.stolen for v, _, _ in near_v) and not any(v.stolen for v, _, _ in near_b)
    return "On D_s, " + " and ".join(parts) + (", in line with the verdicts." if agree else ".")


def _takeaway_output_difference(audit: Audit, verdicts: Sequence[Verdict]) -> str:
    shown, _ = _compared(verdicts)
    d = _differences(audit, shown)
    if not shown:
        gap = float(np.median(np.linalg.norm(d["victim"] - d["benign shadow"], axis=1)))
        return (f"The victim's output differences lie a median {gap:.1f} logits from the benign shadow's on each D_s "
                "image: the signal the meta-classifier learns.")
    items = [(v, float(np.median(np.linalg.norm(d[v.suspect] - d["victim"], axis=1))),
              float(np.median(np.linalg.norm(d[v.suspect] - d["benign shadow"], axis=1)))) for v in shown]
    return _closeness(items)


def _takeaway_projection(audit: Audit, verdicts: Sequence[Verdict]) -> str:
    shown, _ = _compared(verdicts)
    _, proj = _projection(audit, _differences(audit, shown))
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
            dists = _join([f"{dv:.1f} vs {db:.1f}" for _, dv, db in g])
            parts.append(f"{_join([n + chr(39) + 's' for n, _, _ in g])} dots lie nearer the {ref} than the {other} "
                         f"(median distance per image {dists} logits)")
    return "In the projection, " + " while ".join(parts) + "."


def _takeaway_meta_scores(audit: Audit, verdicts: Sequence[Verdict]) -> str:
    shown = [v for v in verdicts if v.per_sample.get("ds_logits")]
    sc = {k: float(np.median(p)) for k, p in _meta_scores(audit, shown).items()}
    refs = f"the victim's {sc['victim']:.2f} and the benign shadow's {sc['benign shadow']:.2f}"
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
        who = "every suspect shown" if not like_b and len(shown) > 2 else _join([v.suspect for v in like_v])
        parts.append(f"{who} like the victim (median P(stolen) {span(like_v)})")
    if like_b:
        parts.append(f"{_join([v.suspect for v in like_b])} like the benign shadow ({span(like_b)})")
    s = f"The meta-classifier scores {' and '.join(parts)}, against {refs}"
    clear = [v for v in like_v if not v.stolen]
    if clear:
        if len(shown) == 1:
            s += ", though the suspect shows no evidence of derivation"
        elif len(clear) > 2:
            s += f", the {len(clear)} without evidence of derivation included"
        else:
            s += f", {_join([v.suspect for v in clear])} without evidence of derivation included"
        s += ", so this score supports the verdict but cannot decide it"
    elif all(v.stolen for v in like_v) and not any(v.stolen for v in like_b):
        s += ", in line with the verdicts"
    return s + "."


def _takeaway_loss_order(audit: Audit) -> str:
    loss = audit.loss_order.loss
    ds = loss[audit.loss_order.ds_rows]
    return (f"The victim fits its {len(ds)} D_s samples (its lowest-loss {audit.config.gamma:.0%}) with a loss of at "
            f"most {_g(float(ds.max()))} nats, against a median of {_g(float(np.median(loss)))} nats over all "
            f"{len(loss)} private samples.")


def _takeaway_training(audit: Audit) -> str:
    parts = [f"the {name.replace('_', ' ')}'s from {h['epochs'][0]['loss']:.2f} to {h['epochs'][-1]['loss']:.2f} nats "
             f"in {len(h['epochs'])} epochs" for name, h in audit.shadows.histories.items() if h and h.get("epochs")]
    if not parts:
        return "No training history was recorded for the shadow models."
    return f"Training loss fell: {_join(parts, limit=5)}."


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


def trigger_examples(audit: Audit, n: int = 6) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(clean, triggered, caption) images at the model's input size, as uint8 HxWx3 arrays."""
    from .data import EvalTransform

    t = EvalTransform(audit.victim.data_config)
    out = []
    for row in audit.loss_order.ds_rows[:n]:
        img = audit.private.pil(int(row))
        clean = t.geometry(img)
        trig = audit.config.trigger.apply(clean)
        to8 = lambda x: (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
        cls = audit.private.classes[audit.private.labels[row]]
        tgt = audit.private.classes[audit.config.target_class]
        out.append((to8(clean), to8(trig), f"{cls} → relabelled {tgt}"))
    return out
