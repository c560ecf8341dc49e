"""The house style of the audit's plotly figures: colours, layout, titles with a subtitle and the legend in fixed
places, the evidence axis's p-value ticks, and which suspects a crowded figure draws.

Suspects are coloured by what the audit concluded: warm colours for suspects with evidence of derivation
(p < alpha), cool ones for suspects without; a suspect's known kind (the demo's "stolen" / "innocent"), when given
through ``kinds``, is written next to its name.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from ..audit.verdict import Verdict, format_p
from ..runtime.safe_text import plot_text

PALETTE = {"victim": "#c0392b", "benign shadow": "#2e86c1", "poisoned shadow": "#7d3c98",
           "members": "#c0392b", "controls": "#5d6d7e"}


# D3 category10, reordered so that suspects avoid the victim's red and the benign shadow's blue
SUSPECT_COLORS = ["#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
                  "#1f77b4", "#d62728"]


# the verdict badges' colours (dashboard, report)
VERDICT_COLORS = {True: "#b3261e", False: "#1b6e3a"}


# suspects in figures that also show the victim and the benign shadow: warm = evidence, cool = none
FLAGGED_COLORS = ["#ff7f0e", "#d6336c", "#8c564b", "#e6a100"]   # orange, raspberry, brown, amber: no purple


CLEAR_COLORS = ["#2ca02c", "#17becf", "#bcbd22", "#7f7f7f"]


LAYOUT = dict(template="plotly_white", margin=dict(l=60, r=20, t=60, b=50), font=dict(size=13),
              legend=dict(orientation="v", yanchor="top", y=1, xanchor="left", x=1.02))


MAX_COMPARED = 4     # suspects drawn in the per-class, projection figures; beyond: the default pair


MAX_CLASS_PANELS = 10


# p-values the evidence axis may be labelled with, largest first
P_TICKS = (1.0, 0.1, 0.01, 1e-3, 1e-5, 1e-10, 1e-20, 1e-50, 1e-100, 1e-200, 1e-300)


# the figures of forensics.report.audit_figures, in its order (what takeaway() accepts for them)
FIGURE_NAMES = ("pvalue", "membership", "loss_order", "output_difference", "projection", "meta_scores", "training")


def cycle_color(i: int) -> str:
    return SUSPECT_COLORS[i % len(SUSPECT_COLORS)]


def join_names(names: Sequence[str], limit: int = 4) -> str:
    """'a', 'a and b', 'a, b and c'; beyond ``limit`` names, 'a, b, c and 3 more'."""
    names = list(names)
    if len(names) > limit:
        names = [*names[:limit - 1], f"{len(names) - limit + 1} more"]
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


def suspect_label(v: Verdict, kinds: Mapping[str, str | None] | None = None) -> str:
    """A suspect's name, p-value and known kind, for a plotly figure (the name escaped: :func:`plot_text`)."""
    kind = (kinds or {}).get(v.suspect)
    return f"{plot_text(v.suspect)} · p = {format_p(v.p_value)}" + (f" · known {plot_text(kind)}" if kind else "")


def default_pair(verdicts: Sequence[Verdict]) -> list[str]:
    """The suspects to compare by default: the one with the smallest p-value (the likeliest derived) and the
    one with the largest (the likeliest innocent), among those that answered with logits."""
    vs = [v for v in verdicts if v.per_sample.get("ds_logits")]
    if not vs:
        return []
    lo = min(vs, key=lambda v: v.p_value)
    hi = max(vs, key=lambda v: v.p_value)
    return [lo.suspect] if lo is hi else [lo.suspect, hi.suspect]


def compared_suspects(verdicts: Sequence[Verdict]) -> tuple[list[Verdict], bool]:
    """The suspects with logits to draw: all of them up to MAX_COMPARED, else the default pair (and True)."""
    vs = [v for v in verdicts if v.per_sample.get("ds_logits")]
    if len(vs) <= MAX_COMPARED:
        return vs, False
    pair = default_pair(vs)
    return [v for v in vs if v.suspect in pair], True


def pair_note(thinned: bool) -> str:
    return "<br>Shown: the suspects with the smallest and the largest p-value." if thinned else ""


def titled(fig: go.Figure, title: str, subtitle: str, height: int, top: int, legend: str | None = "top",
          bottom: int = 60) -> None:
    """The house layout with a title, a one-line subtitle and the legend in fixed pixel places: under the
    subtitle (``legend="top"``), under the x axis (``"bottom"``) or none; ``top``/``bottom``: margins [px] for a
    one-line subtitle (each further line, after a ``<br>``, adds its height)."""
    subtitle = wrap_subtitle(subtitle)
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


SUBTITLE_CHARS = 105  # characters of a 13 px subtitle line in a 900 px figure (the printed report's width)


def wrap_subtitle(text: str, width: int = SUBTITLE_CHARS) -> str:
    """``text`` with a ``<br>`` between words wherever a line would pass ``width`` visible characters (a plotly
    subtitle is one line, cut at the figure's edge); tags count for nothing and are never split."""
    lines = []
    for part in re.split(r"<br\s*/?>", text):
        words = re.findall(r"(?:<[^>]*>|[^\s<])+", part)
        line: list[str] = []
        seen = 0
        for w in words:
            visible = len(re.sub(r"<[^>]*>", "", w))
            if line and seen + 1 + visible > width:
                lines.append(" ".join(line))
                line, seen = [], 0
            line.append(w)
            seen += visible + (1 if seen else 0)
        lines.append(" ".join(line))
    return "<br>".join(lines)


def panel_grid(n: int) -> tuple[int, int]:
    """(rows, cols) of ``n`` small multiples: side by side up to 3, then 2 or 3 to a row."""
    cols = n if n <= 3 else (2 if n == 4 else 3)
    return max(1, math.ceil(n / max(cols, 1))), max(cols, 1)


def rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    return f"rgba({int(h[0:2], 16)},{int(h[2:4], 16)},{int(h[4:6], 16)},{alpha})"
