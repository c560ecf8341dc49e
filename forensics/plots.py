"""Plotly figures of an audit, shared by the dashboard and the HTML report.

Every function takes core objects (an :class:`~forensics.audit.Audit`, verdicts) and returns a
``plotly.graph_objects.Figure`` with a title and labelled axes (units in brackets).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from .audit import Audit
from .meta import STOLEN, output_difference
from .verify import Verdict, format_p

PALETTE = {"victim": "#c0392b", "benign shadow": "#2e86c1", "poisoned shadow": "#7d3c98",
           "members": "#c0392b", "controls": "#5d6d7e"}
# D3 category10, reordered so that suspects avoid the victim's red and the benign shadow's blue
SUSPECT_COLORS = ["#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                  "#1f77b4", "#d62728"]
LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), font=dict(size=13),
              legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02))


def _color(i: int) -> str:
    return SUSPECT_COLORS[i % len(SUSPECT_COLORS)]


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


def _differences(audit: Audit, verdicts: Sequence[Verdict]) -> dict[str, np.ndarray]:
    logits = audit.meta.logits_ds
    p = logits["poisoned"]
    out = {"victim": output_difference(logits["victim"], p),
           "benign shadow": output_difference(logits["benign"], p)}
    for v in verdicts:
        if v.per_sample.get("ds_logits"):
            out[v.suspect] = output_difference(np.asarray(v.per_sample["ds_logits"]), p)
    return out


def output_difference_figure(audit: Audit, verdicts: Sequence[Verdict] = ()) -> go.Figure:
    """Per-class distributions of the output differences O = model - poisoned shadow on D_s."""
    classes = audit.private.classes
    fig = go.Figure()
    for i, (name, o) in enumerate(_differences(audit, verdicts).items()):
        color = PALETTE.get(name, _color(i))
        x = np.repeat(np.array(classes), len(o))
        fig.add_trace(go.Box(y=o.T.reshape(-1), x=x, name=name, marker_color=color, boxpoints=False))
    fig.update_layout(title="Output differences on D_s, per class (model minus poisoned shadow)", boxmode="group",
                      xaxis_title="class (logit dimension)", yaxis_title="logit difference [logits, row-centred]",
                      **LAYOUT)
    return fig


def projection_figure(audit: Audit, verdicts: Sequence[Verdict] = ()) -> go.Figure:
    """A 2-D PCA projection of the output differences, one colour per model."""
    from sklearn.decomposition import PCA

    diffs = _differences(audit, verdicts)
    base = np.concatenate([diffs["victim"], diffs["benign shadow"]])
    pca = PCA(n_components=2, random_state=audit.config.seed).fit(base)
    fig = go.Figure()
    for i, (name, o) in enumerate(diffs.items()):
        z = pca.transform(o)
        fig.add_trace(go.Scattergl(x=z[:, 0], y=z[:, 1], mode="markers", name=name,
                                   marker=dict(size=6, opacity=0.65, color=PALETTE.get(name, _color(i)))))
    ev = pca.explained_variance_ratio_ * 100
    fig.update_layout(title="Output differences projected on 2 principal components (fitted on victim and benign)",
                      xaxis_title=f"PC 1 [{ev[0]:.0f}% of variance]", yaxis_title=f"PC 2 [{ev[1]:.0f}% of variance]",
                      **LAYOUT)
    return fig


def meta_scores_figure(audit: Audit, verdicts: Sequence[Verdict] = ()) -> go.Figure:
    """The meta-classifier's P(stolen) on the held-out verification rows of D_s, one box per model."""
    rows = audit.meta.split["verify"]
    fig = go.Figure()
    for i, (name, o) in enumerate(_differences(audit, verdicts).items()):
        p = audit.meta.classifier.predict_proba(o[rows])[:, STOLEN]
        fig.add_trace(go.Box(x=p, name=name, boxpoints="all", jitter=0.4, pointpos=0, orientation="h",
                             marker=dict(size=4, color=PALETTE.get(name, _color(i))), line=dict(width=1.5),
                             showlegend=False))
    fig.add_vline(x=0.5, line=dict(color="#555", dash="dash"))
    fig.update_layout(title=f"Meta-classifier scores on {len(rows)} held-out D_s samples",
                      xaxis_title="P(stolen) [probability]", xaxis_range=[0, 1], yaxis_autorange="reversed",
                      height=max(360, 60 + 45 * (2 + len(verdicts))), **LAYOUT)
    return fig


def membership_figure(verdicts: Sequence[Verdict]) -> go.Figure:
    """Per difficulty stratum: how much better each suspect fits members than controls.

    The y value is the controls' mean loss minus the members' mean loss (or error rates with
    labels only): 0 for a model that cannot tell the victim's training samples from unseen ones."""
    fig = go.Figure()
    shown = [v for v in verdicts if "membership" in v.evidence]
    for i, v in enumerate(shown):
        st = v.evidence["membership"]["strata"]
        fig.add_trace(go.Scatter(x=[r["stratum"] + 1 for r in st], y=[r["control_mean"] - r["member_mean"] for r in st],
                                 mode="lines+markers",
                                 name=f"{v.suspect} (p = {format_p(v.evidence['membership']['p_value'])})",
                                 line=dict(color=_color(i), width=2.5)))
    fig.add_hline(y=0, line=dict(color="#555", dash="dash"), annotation_text="no membership signal")
    label_only = shown and shown[0].evidence["membership"]["score"] == "error"
    unit = "error rate [share]" if label_only else "loss [nats]"
    fig.update_layout(title="How much better each suspect fits the victim's training samples than unseen ones",
                      xaxis_title="difficulty stratum (1 = easiest, by the reference shadow's loss)",
                      yaxis_title=f"controls minus members, mean {unit}", **LAYOUT)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=0.01,
                                  bgcolor="rgba(255,255,255,0.8)"))
    return fig


def pvalue_figure(verdicts: Sequence[Verdict], alpha: float, protocol: str | None = None) -> go.Figure:
    """-log10 p per suspect under ``protocol`` (default: each verdict's own), with the alpha line."""
    shown = [(v.suspect, r) for v in verdicts if (r := v.under(protocol, alpha)) is not None]
    names = [name for name, _ in shown]
    vals = [-np.log10(max(r.p_value, 1e-300)) for _, r in shown]
    colors = ["#b3261e" if r.stolen else "#1b6e3a" for _, r in shown]
    fig = go.Figure(go.Bar(x=names, y=vals, marker_color=colors,
                           text=[f"p = {format_p(r.p_value)}" for _, r in shown], textposition="outside"))
    fig.add_hline(y=-np.log10(alpha), line=dict(color="#333", dash="dash"), annotation_text=f"alpha = {alpha}")
    fig.update_layout(title="Evidence per suspect (higher = stronger evidence of theft)", xaxis_title="suspect",
                      yaxis_title="-log10 p-value", yaxis_type="log" if max(vals, default=1) > 50 else "linear",
                      **LAYOUT)
    return fig


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
