"""Figures of stage 3, the verdicts: the evidence per suspect on a p-value axis (:func:`pvalue_figure`) and the
membership evidence per difficulty stratum (:func:`membership_figure`), the figure the default verdict rests on."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..audit.verdict import Verdict, format_p
from ..runtime.safe_text import plot_text
from .style import P_TICKS, VERDICT_COLORS, rgba, titled


def stratum_gaps(v: Verdict) -> tuple[list[int], list[float]]:
    st = v.evidence["membership"]["strata"]
    return [r["stratum"] + 1 for r in st], [r["control_mean"] - r["member_mean"] for r in st]


def membership_unit(v: Verdict) -> str:
    """What the membership gaps of a verdict are measured in: loss (logits) or error rate (labels only)."""
    return "error rate" if v.evidence["membership"]["score"] == "error" else "nats"


def membership_flagged(v: Verdict, alpha: float | None) -> bool:
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
    units = {membership_unit(v) for v in shown}
    mixed = len(units) > 1  # loss (logits) and error rates (labels only) are not drawn on one scale
    unit = units.pop() if len(units) == 1 else "nats"
    cols = max(1, min(3, len(shown)))
    rows = max(1, math.ceil(len(shown) / cols))
    titles = []
    for v in shown:
        f = membership_flagged(v, alpha)
        kind = (kinds or {}).get(v.suspect)
        titles.append(f"<b style='color:{VERDICT_COLORS[f]}'>{plot_text(v.suspect)}</b><br>"
                      f"<span style='color:{VERDICT_COLORS[f]}'>p = {format_p(v.evidence['membership']['p_value'])}"
                      f" · {'evidence of derivation' if f else 'no evidence'}</span>"
                      + (f"<span style='color:#777'> · known {plot_text(kind)}</span>" if kind else "")
                      + (f" · in {membership_unit(v)}" if mixed else ""))
    fig = make_subplots(rows=rows, cols=cols, shared_yaxes=False if mixed else "all", shared_xaxes="all",
                        subplot_titles=titles or None,
                        horizontal_spacing=0.04, vertical_spacing=0.2 if rows > 1 else 0.1)
    gaps = {v.suspect: stratum_gaps(v) for v in shown}
    for j, v in enumerate(shown):
        r, c = j // cols + 1, j % cols + 1
        for other in shown:  # context: every other suspect (on the same scale), light
            if other is not v and membership_unit(other) == membership_unit(v):
                x, y = gaps[other.suspect]
                fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color="#d5d8dc", width=1),
                                         showlegend=False, hoverinfo="skip"), row=r, col=c)
        x, y = gaps[v.suspect]
        color = VERDICT_COLORS[membership_flagged(v, alpha)]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", line=dict(color=color, width=3), showlegend=False,
                                 fill="tozeroy", fillcolor=rgba(color, 0.12), name=plot_text(v.suspect),
                                 hovertemplate=f"{plot_text(v.suspect)}<br>stratum %{{x}}: %{{y:.3f}} {unit}"
                                               "<extra></extra>"),
                      row=r, col=c)
        fig.add_hline(y=0, line=dict(color="#555", dash="dash", width=1), row=r, col=c)
        fig.update_xaxes(dtick=1 if len(x) <= 10 else None, row=r, col=c)
    for j in range(max(0, len(shown) - cols), len(shown)):  # the lowest panel of each column: its axis labelled
        fig.update_xaxes(title_text="difficulty stratum [1 = easiest]", showticklabels=True, row=j // cols + 1,
                         col=j % cols + 1)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=f"controls minus members [{'see panel' if mixed else unit}]", row=r, col=1)
    titled(fig, "How much better each suspect fits the victim's training samples than unseen ones",
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
    label = {n: plot_text(n) for n, _ in shown}  # what the figure shows of each name (escaped)
    names = [label[name] for name, _ in shown]
    p_min = min((r.p_value for _, r in shown), default=1.0)
    tickvals, ticktext = p_ticks(min(p_min, alpha / 10))
    fig = go.Figure()
    for stolen, legend in ((True, f"evidence of derivation (p < {alpha:g})"),
                           (False, f"no evidence (p ≥ {alpha:g})")):
        group = [(n, r) for n, r in shown if r.stolen == stolen]
        kind = [(kinds or {}).get(n) for n, _ in group]
        fig.add_trace(go.Bar(
            y=[label[n] for n, _ in group], x=[_evidence_axis(r.p_value) for _, r in group], orientation="h",
            name=legend,
            marker_color=VERDICT_COLORS[stolen], text=[f"p = {format_p(r.p_value)}" for _, r in group],
            textposition="outside", cliponaxis=False, textfont=dict(size=13),
            customdata=[[format_p(r.p_value), plot_text(k or "unknown")]
                        for (_, r), k in zip(group, kind, strict=True)],
            hovertemplate="%{y}<br>p = %{customdata[0]}<br>known kind: %{customdata[1]}<extra></extra>"))
    a = _evidence_axis(alpha)
    top = tickvals[-1] * 1.12 + 0.05
    fig.add_vrect(x0=a, x1=top, fillcolor=VERDICT_COLORS[True], opacity=0.05, line_width=0, layer="below")
    fig.add_vline(x=a, line=dict(color="#333", dash="dash", width=1.5), annotation_text=f"alpha = {alpha:g}",
                  annotation_position="top", annotation_font_size=12)
    titled(fig, "Evidence per suspect (longer bar = smaller p-value = stronger evidence of derivation)",
           "Right of the dashed alpha line: the suspect fits the victim's training samples better than chance allows.",
           height=190 + 46 * max(1, len(names)), top=100, legend="bottom", bottom=100)
    fig.update_layout(
        barmode="overlay", bargap=0.35, margin_l=20, margin_r=30,
        xaxis=dict(title="p-value [log-log scale; smaller to the right]", tickvals=tickvals, ticktext=ticktext,
                   range=[0, top], showgrid=True, zeroline=True, zerolinecolor="#999"),
        yaxis=dict(title="", categoryorder="array", categoryarray=names, autorange="reversed", automargin=True))
    return fig


def sequential_figure(trace: Sequence[Sequence[float]], alpha: float, *, name: str = "the suspect",
                      decision: str | None = None, budget: int | None = None) -> go.Figure:
    """The running anytime-valid p-value of an API audit against the queries paid (``trace``: (queries, p) after each
    round), with the alpha line: the audit stops where the curve first crosses it, or for futility."""
    q = [int(x[0]) for x in trace]
    p = [max(float(x[1]), 1e-300) for x in trace]
    stolen = decision == "evidence"
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, *q], y=[1.0, *p], mode="lines+markers", line_shape="hv", name=plot_text(name),
                             marker=dict(size=6), line=dict(color=VERDICT_COLORS[stolen], width=2.5),
                             hovertemplate="%{x} queries<br>p = %{y:.3g}<extra></extra>"))
    fig.add_hline(y=alpha, line=dict(color="#333", dash="dash", width=1.5))
    # placed by hand: on a log axis an hline's own annotation is drawn at log10 of its place
    fig.add_annotation(x=0.01, xref="paper", y=math.log10(alpha), yref="y", text=f"alpha = {alpha:g}",
                       showarrow=False, xanchor="left", yanchor="bottom", font_size=12)
    fig.add_hrect(y0=min(min(p, default=alpha), alpha) / 10, y1=alpha, fillcolor=VERDICT_COLORS[True], opacity=0.05,
                  line_width=0, layer="below")
    if budget:
        fig.add_vline(x=budget, line=dict(color="#888", dash="dot", width=1), annotation_text="budget",
                      annotation_position="top left", annotation_font_size=12)
    ends = {"evidence": "stopped: evidence of derivation", "futility": "stopped: too little of your model's signal "
            "to go on (no evidence)", None: "no decision yet (no evidence so far)"}
    titled(fig, "Running p-value of the sequential test (anytime-valid)",
           f"{ends.get(decision, '')}. Below the dashed alpha line: evidence of derivation; the p-value stays valid "
           "whenever the audit stops.", height=360, top=90, legend=None)
    fig.update_layout(xaxis=dict(title="queries paid", rangemode="tozero"),
                      yaxis=dict(title="p-value (log scale)", type="log", exponentformat="power"))
    return fig
