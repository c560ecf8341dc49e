"""The stress test: simulated thefts and innocent models of an owner's *own* victim, verified by the owner's audit -
would this audit catch a theft of my model? The thief's and the innocent party's data are checked disjoint from the
audit's members and controls; the result reads as detection power per kind of theft."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..audit.opened import Audit
from ..audit.sources import load_data
from ..audit.verdict import format_p
from ..data.images import ImageSet, concat, pixel_hashes, synthetic_images
from ..errors import ConfigError, DataSourceError
from ..runtime.progress import Progress
from .bench import BenchResult, run_bench
from .entries import OTHER_FOUNDATION, ZooContext, ZooEntry, ZooResult


# -- the thief's data, and the two entry points --------------------------------------------------------------------
def _image_hashes(images: ImageSet) -> set[bytes]:
    """Hashes of the decoded RGB pixels, so a PNG file and the same image in memory are one image."""
    return {bytes(h) for h in pixel_hashes(images)}


def require_stress_data(thief: str | None, innocent: str | None) -> None:
    """Both data sources a stress test needs are given (said before any audit is opened)."""
    if not (thief or "").strip() or not (innocent or "").strip():
        raise ConfigError("a stress test needs the thief's data (images a thief would train on) and an innocent "
                          "party's data (images of the same kind an honest party would train on), both disjoint from "
                          "the audit's private and held-out data (the CLI's --thief-data and --innocent-data)")


def load_stress_data(audit: Audit, thief: str, innocent: str, test: str | None = None
                     ) -> tuple[ImageSet, ImageSet, ImageSet | None]:
    """The thief's, the innocent party's and (optionally) the test data of a stress test, read with the victim's
    classes (the demo's reduced splits when the audit is the reduced demo's)."""
    require_stress_data(thief, innocent)
    classes, quick = audit.private.classes, audit.spec.quick
    return (load_data(thief.strip(), classes=classes, quick=quick),
            load_data(innocent.strip(), classes=classes, quick=quick),
            load_data(test.strip(), classes=classes, quick=quick) if test and test.strip() else None)


def check_disjoint(audit: Audit, data: ImageSet, what: str) -> None:
    """The thief's (or an innocent's) data must share no image with the audit's members or controls: a stress test
    on them would measure the audit against its own evidence."""
    used = _image_hashes(audit.private.subset(audit.membership.member_rows))
    if audit.heldout is not None:
        used |= _image_hashes(audit.heldout.subset(audit.membership.control_rows))
    both = used & _image_hashes(data)
    if both:
        raise DataSourceError(f"the {what} shares {len(both)} images with the audit's members or controls; give data "
                              "the audit never uses (not its private or held-out folders)")
    if data.classes != audit.private.classes:
        raise DataSourceError(f"the {what}'s classes {data.classes} differ from the victim's {audit.private.classes}")


def user_context(audit: Audit, thief: ImageSet, innocent: ImageSet, test: ImageSet | None = None,
                 other_foundation: str | None = None) -> ZooContext:
    """A zoo context for a user's own victim: the thief's data, an innocent party's data (the same distribution,
    never the victim's), labelled test data for fidelity (default: the innocent data)."""
    check_disjoint(audit, thief, "thief's data")
    check_disjoint(audit, innocent, "innocent data")
    half = innocent.subset(np.random.default_rng(audit.config.seed).permutation(len(innocent))[:len(innocent) // 2],
                           "innocent/2")
    side = int(audit.victim.data_config["input_size"][-1])
    data = {"aux": thief, "innocent": innocent, "innocent/2": half,
            "innocent+aux": concat([innocent, thief], "innocent+aux"),
            "synthetic": synthetic_images(len(thief), (side, side, 3), thief.classes)}
    return ZooContext(audit, data, audit.config.train, other_foundation or "", test or innocent)


def usable_entries(entries: list[ZooEntry], ctx: ZooContext) -> tuple[list[ZooEntry], list[str]]:
    """The entries this context can build, and why the others are left out."""
    keep, skipped = [], []
    for e in entries:
        if e.student == OTHER_FOUNDATION and not ctx.other_foundation:
            skipped.append(f"{e.title}: needs another foundation (--other-foundation)")
        else:
            keep.append(e)
    return keep, skipped


def stress_rows(bench: BenchResult, protocol: str, alpha: float) -> list[dict[str, Any]]:
    """Per zoo entry: how often the audit's protocol flags it at ``alpha`` over the seeds, its median p, fidelity
    and role - the detection power (thefts that count: derived and useful) or false-positive rate (innocents, and
    controls in which nothing of the victim survives) an owner can expect."""
    rows: dict[str, dict[str, Any]] = {}
    for r in bench.results:
        entry = r.entry
        row = rows.setdefault(entry.id, {"id": entry.id, "name": entry.title, "group": entry.group,
                                         "kind": entry.kind, "survives": r.survives, "p": [], "agreement": [],
                                         "roles": []})
        e = r.verdict.evidence.get(protocol)
        if e is not None:
            row["p"].append(e["p_value"])
        row["agreement"].append(r.agreement)
        row["roles"].append(r.role)
    out = []
    for row in rows.values():
        ps = row.pop("p")
        roles = row.pop("roles")
        agreement = float(np.mean(row.pop("agreement")))
        flagged = sum(p < alpha for p in ps)
        # a theft that was useful in some runs and not in others counts by its majority
        role = max(dict.fromkeys(roles), key=roles.count)
        out.append({**row, "agreement": agreement, "flagged": flagged, "runs": len(ps),
                    "median_p": float(np.median(ps)) if ps else None, "role": role})
    return out


ROLE_NOTES = {"failed theft": "its accuracy is below 90 % of your model's: a thief would not deploy it, so it is no "
                              "real test",
              "control": "nothing of your model survives in it (it re-trained exactly what you trained): no method "
                         "can or should flag it"}


def stress_summary(bench: BenchResult, record: dict[str, Any], alpha: float) -> str:
    """The stress test in words: detection power per simulated attack beside the audit's own verdicts."""
    protocol = record.get("spec", {}).get("config", {}).get("protocol", "membership")
    lines = [f"Stress test of {bench.meta.get('victim')}: would this audit ({protocol}, alpha = {alpha}) catch these?",
             "", f"{'simulated suspect':52s} {'kind':8s} {'agree':>5s} {'flagged':>8s} {'median p':>9s}"]
    for row in stress_rows(bench, protocol, alpha):
        note = f"  ({ROLE_NOTES[row['role']]})" if row["role"] in ROLE_NOTES else ""
        lines.append(f"{row['name'][:52]:52s} {row['kind']:8s} {row['agreement']:5.2f} "
                     f"{row['flagged']:>3d} of {row['runs']:<2d} {format_p(row['median_p']):>9s}{note}")
    verdicts = record.get("suspects", [])
    if verdicts:
        lines += ["", "The audit's own verdicts:"]
        lines += [f"  {s['name'][:50]:50s} p = {format_p(s['p_value'])}  {s['verdict']}" for s in verdicts]
    lines += ["", "'No evidence' from this audit rules out the thefts flagged in (almost) every run above; it says "
              "little about kinds flagged rarely."]
    return "\n".join(lines)


def stress_test(audit: Audit, thief: ImageSet, innocent: ImageSet, entries: list[ZooEntry], seeds: list[int], *,
                test: ImageSet | None = None, other_foundation: str | None = None, baselines: bool = False,
                budgets: tuple[int, ...] = (), progress: Progress | None = None,
                on_result: Callable[[ZooResult], None] | None = None) -> BenchResult:
    """Simulated thefts and innocents of ``audit``'s own victim (the thief's and the innocent's data checked
    disjoint from the audit's members and controls), verified by the audit: its detection power per attack.
    Entries the context cannot build are left out and listed in ``meta["skipped"]``."""
    t = time.perf_counter()
    ctx = user_context(audit, thief, innocent, test, other_foundation)
    entries, skipped = usable_entries(entries, ctx)
    if not entries:
        raise ConfigError("no simulated attack left to run: " + "; ".join(skipped))
    result = run_bench(dict.fromkeys(seeds, audit), dict.fromkeys(seeds, ctx), entries, seeds, baselines=baselines,
                       budgets=budgets, progress=progress, on_result=on_result)
    result.times["total"] = time.perf_counter() - t
    result.meta = {"victim": audit.victim.source, "seeds": list(seeds), "entries": [e.id for e in entries],
                   "skipped": skipped, "protocol": audit.config.protocol, "alpha": audit.config.alpha}
    return result


ROLE_TRACES = (("theft", "simulated thefts", "#b3261e"),
               ("failed theft", "failed thefts (not useful: not counted)", "#e8a39c"),
               ("control", "controls (nothing of your model survives)", "#8a8f98"),
               ("innocent", "simulated innocents", "#1b6e3a"))


SHOWN_FROM = 1e-20  # the chart's left edge: smaller p-values are drawn there (their hover says the real value)


def stress_figure(bench: BenchResult, protocol: str, alpha: float):
    """Every simulated suspect's p-value (log scale, 1e-20 to 1) per attack, one colour per role (thefts, failed
    thefts, controls, innocents); alpha marked, the side of no evidence shaded."""
    import plotly.graph_objects as go

    from ..audit.verdict import format_p

    fig = go.Figure()
    fig.add_vrect(x0=alpha, x1=1.0, fillcolor="#1b6e3a", opacity=0.06, line_width=0, layer="below")
    for role, name, colour in ROLE_TRACES:
        rs = [r for r in bench.results if r.role == role and protocol in r.verdict.evidence]
        if rs:
            ps = [float(r.verdict.evidence[protocol]["p_value"]) for r in rs]
            fig.add_trace(go.Box(
                y=[r.entry.title for r in rs], x=[min(max(p, SHOWN_FROM), 1.0) for p in ps],
                customdata=[format_p(p) for p in ps], name=name, orientation="h",
                boxpoints="all", pointpos=0, jitter=0.3, fillcolor="rgba(0,0,0,0)", line=dict(color="rgba(0,0,0,0)"),
                marker=dict(color=colour, size=9), hovertemplate="%{y}<br>p = %{customdata}<extra></extra>"))
    fig.add_vline(x=alpha, line_dash="dash", line_color="#444")
    fig.add_annotation(x=np.log10(alpha), y=1.0, yref="paper", xanchor="right", yanchor="bottom", showarrow=False,
                       text=f"<b>evidence of derivation</b> ◀ alpha = {alpha}", font=dict(color="#b3261e", size=12))
    fig.add_annotation(x=np.log10(alpha) / 2, y=0.5, yref="paper", textangle=-90, showarrow=False,
                       text="<b>no evidence</b>", font=dict(color="#1b6e3a", size=12))
    names = list(dict.fromkeys(r.entry.title for r in bench.results))
    exps = [-20, -15, -10, -5, -3, -2, -1, 0]
    fig.update_layout(
        template="plotly_white", height=max(340, 34 * len(names) + 180), margin=dict(l=10, r=10, t=110, b=50),
        xaxis=dict(type="log", range=[np.log10(SHOWN_FROM) - 0.4, 0.05], tickvals=[10.0 ** e for e in exps],
                   ticktext=["≤ 1e-20"] + [f"1e{e}" for e in exps[1:-1]] + ["1"],
                   title=f"p-value ({protocol} test), log scale: smaller is stronger evidence"),
        legend=dict(orientation="h", y=1.14, yanchor="bottom"),
        yaxis=dict(categoryorder="array", categoryarray=names[::-1], range=[-0.7, len(names) - 0.3]))
    return fig
