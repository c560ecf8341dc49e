"""Figures of stages 1 and 2, shared by the dashboard and the HTML report: the victim's loss order, the shadows'
training curves, and the Holmes features (O = model - poisoned shadow on clean D_s) per class, projected on two
principal components, and as the meta-classifier scores them.  Each takes core objects and returns a plotly figure
with a title and labelled axes (units in brackets); :mod:`.takeaways` says in one sentence what each shows."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from ..audit.opened import Audit
from ..audit.verdict import Verdict, format_p
from ..method.meta import STOLEN, output_difference
from ..runtime.safe_text import plot_text
from .style import (
    LAYOUT,
    MAX_CLASS_PANELS,
    PALETTE,
    compared_suspects,
    cycle_color,
    pair_note,
    panel_grid,
    suspect_colors,
    suspect_label,
    titled,
)


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
                                 name=plot_text(name.replace("_", " ")), line=dict(color=cycle_color(i))))
    fig.update_layout(title="Training loss of the shadow models", xaxis_title="epoch", xaxis_dtick=1,
                      yaxis_title="training loss [nats]", **LAYOUT)
    return fig


def output_differences(audit: Audit, verdicts: Sequence[Verdict]) -> dict[str, np.ndarray]:
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

    shown, thinned = compared_suspects(verdicts)
    diffs = output_differences(audit, shown)
    colors = _model_colors(shown)
    names = {"victim": "victim", "benign shadow": "benign shadow",
             **{v.suspect: suspect_label(v, kinds) for v in shown}}
    classes = _class_panels(audit, diffs["victim"], diffs["benign shadow"])
    cols = min(5, len(classes))
    rows = math.ceil(len(classes) / cols)
    tgt = audit.config.target_class
    titles = [plot_text(audit.private.classes[c]) + (" (trigger target)" if c == tgt else "") for c in classes]
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
    titled(fig, "Output differences on D_s, per class (model minus poisoned shadow)",
           f"Each box: one model's O on that class's logit over the {len(diffs['victim'])} D_s images; red band: the "
           "victim's middle half. Boxes in the band: answers D_s like the victim." + pair_note(thinned),
           height=170 + 240 * rows, top=150, bottom=20)
    fig.update_layout(boxgap=0.25)
    fig.update_annotations(font_size=12)
    return fig


def pca_projection(audit: Audit, diffs: dict[str, np.ndarray]):
    from sklearn.decomposition import PCA

    base = np.concatenate([diffs["victim"], diffs["benign shadow"]])
    pca = PCA(n_components=2, random_state=audit.config.seed).fit(base)
    return pca, {name: pca.transform(o) for name, o in diffs.items()}


def projection_figure(audit: Audit, verdicts: Sequence[Verdict] = (), *,
                      kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """The output differences on 2 principal components (fitted on the victim and the benign shadow), one panel
    per suspect (at most MAX_COMPARED; given more, the default pair): the victim's and the benign shadow's D_s
    images as light clouds, the suspect's on top, one dot per image; shared axes."""
    from plotly.subplots import make_subplots

    shown, thinned = compared_suspects(verdicts)
    diffs = output_differences(audit, shown)
    pca, proj = pca_projection(audit, diffs)
    colors = _model_colors(shown)
    rows, cols = panel_grid(len(shown))
    titles = [f"<b style='color:{colors[v.suspect]}'>{plot_text(v.suspect)}</b><br><span style='color:#555'>p = "
              f"{format_p(v.p_value)} · {'evidence of derivation' if v.stolen else 'no evidence'}"
              + (f" · known {plot_text((kinds or {})[v.suspect])}" if (kinds or {}).get(v.suspect) else "") + "</span>"
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
        fig.add_trace(go.Scatter(x=z[:, 0], y=z[:, 1], mode="markers", name=plot_text(v.suspect), showlegend=False,
                                 marker=dict(size=7, color=col, line=dict(color="#fff", width=0.8)),
                                 hovertemplate=f"{plot_text(v.suspect)}<extra></extra>"), row=r, col=c)
    ev = pca.explained_variance_ratio_ * 100
    for c in range(1, cols + 1):
        fig.update_xaxes(title_text=f"PC 1 [{ev[0]:.0f}% of variance, logits]", row=rows, col=c)
    for r in range(1, rows + 1):
        fig.update_yaxes(title_text=f"PC 2 [{ev[1]:.0f}% of variance, logits]", row=r, col=1)
    titled(fig, "Output differences projected on 2 principal components (fitted on victim and benign shadow)",
           "One dot per D_s image, the suspect's in its panel's colour.<br>Suspect dots on the victim's (red): it "
           "answers D_s like the victim; on the benign shadow's (blue): like an independent model."
           + pair_note(thinned),
           height=170 + 380 * rows, top=148)
    fig.update_annotations(font_size=13)
    return fig


def meta_scores(audit: Audit, verdicts: Sequence[Verdict]) -> dict[str, np.ndarray]:
    rows = audit.meta.split["verify"]
    return {name: audit.meta.classifier.predict_proba(o[rows])[:, STOLEN]
            for name, o in output_differences(audit, verdicts).items()}


def meta_scores_figure(audit: Audit, verdicts: Sequence[Verdict] = (), *,
                       kinds: Mapping[str, str | None] | None = None) -> go.Figure:
    """The meta-classifier's P(stolen) on the held-out verification rows of D_s, one box per model."""
    shown = [v for v in verdicts if v.per_sample.get("ds_logits")]
    scores = meta_scores(audit, shown)
    colors = _model_colors(shown)
    names = {"victim": "victim (stolen by definition)", "benign shadow": "benign shadow (innocent by definition)",
             **{v.suspect: suspect_label(v, kinds) for v in shown}}
    fig = go.Figure()
    for name, p in scores.items():
        fig.add_trace(go.Box(x=p, name=names[name], boxpoints="all", jitter=0.4, pointpos=0, orientation="h",
                             marker=dict(size=5, color=colors[name]), line=dict(width=1.5), showlegend=False,
                             hovertemplate="P(stolen) = %{x:.3f}<extra></extra>"))
    fig.add_vline(x=0.5, line=dict(color="#555", dash="dash"), annotation_text="0.5: undecided",
                  annotation_position="top")
    n = len(audit.meta.split["verify"])
    titled(fig, f"Meta-classifier scores on {n} held-out D_s samples",
           "Right: scored like the victim; left: like the benign shadow (trained without D_s). Suspects in warm "
           "colours show evidence of derivation, in cool colours none.",
           height=max(360, 140 + 48 * len(scores)), top=110, legend=None)
    fig.update_layout(xaxis_title="P(stolen) [probability]", xaxis_range=[0, 1], yaxis_autorange="reversed")
    return fig
