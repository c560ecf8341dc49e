"""What a benchmark shows: per attack type the AUC of the p-values against the innocent models, the TPR at alpha
0.01, 0.001 and 0.05 over the thefts that count (derived from the victim and useful:
:attr:`~forensics.zoo.entries.ZooResult.counts_as_theft`; agreement is reported beside them, never used to drop
one), the median p; per protocol the FPR on the innocents and, apart, the rate at which it flags the controls
(thefts in which nothing of the victim survives); the thefts that failed (not useful), listed; the query-budget
curve; the wall time of every stage.  Written as bench.json, bench.md and bench.html (ROC and budget figures,
plotly)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..audit.verdict import format_p
from .bench import ALPHAS, BenchResult
from .entries import USEFUL


# -- summaries --------------------------------------------------------------------------------------------------
def _score(p: float) -> float:
    return -np.log10(max(p, 1e-300))


def _auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a theft's p < an innocent's p), ties half: the AUC of -log10 p."""
    if not pos or not neg:
        return None
    a, b = np.array([_score(p) for p in pos]), np.array([_score(p) for p in neg])
    return float(((a[:, None] > b[None]).sum() + 0.5 * (a[:, None] == b[None]).sum()) / (len(a) * len(b)))


def _rates(ps: list[float], prefix: str) -> dict[str, float | None]:
    return {f"{prefix}_{a}": float(np.mean([x < a for x in ps])) if ps else None for a in ALPHAS}


def summarize(bench: BenchResult) -> dict[str, Any]:
    """Per attack type and protocol: AUC, TPR, median p over the thefts that count; per protocol: FPR and min p on
    the innocents, the flag rate on the controls; the failed thefts; the budget curve (share of counted thefts
    caught at 0.01 per budget, per attack type); queries to reach p < 0.01."""
    protocols = bench.protocols()
    innocents = [r for r in bench.results if r.role == "innocent"]
    controls = [r for r in bench.results if r.role == "control"]
    derived = [r for r in bench.results if r.role in ("theft", "failed theft")]
    groups = list(dict.fromkeys(r.entry.group for r in derived))

    def p_of(rs, p):
        return [r.verdict.evidence[p]["p_value"] for r in rs if p in r.verdict.evidence]

    neg = {p: p_of(innocents, p) for p in protocols}
    by_group = []
    for g in groups:
        rs = [r for r in derived if r.entry.group == g]
        counted = [r for r in rs if r.counts_as_theft]
        row: dict[str, Any] = {"group": g, "suspects": len(rs), "useful": len(counted),
                               "survives": sorted({r.survives for r in rs}),
                               "agreement": float(np.mean([r.agreement for r in rs])), "protocols": {}}
        for p in protocols:
            ps = p_of(counted, p)
            if ps:
                row["protocols"][p] = {"auc": _auc(ps, neg[p]), "median_p": float(np.median(ps)), "n": len(ps),
                                       **_rates(ps, "tpr")}
        by_group.append(row)
    fpr = {p: {"n": len(v), "min_p": float(min(v)) if v else None, **_rates(v, "fpr")} for p, v in neg.items()}
    control_rates = {p: {"n": len(v), "min_p": float(min(v)) if v else None, **_rates(v, "flagged")}
                     for p in protocols if (v := p_of(controls, p))}
    thefts = [r for r in derived if r.counts_as_theft]
    pos = {p: p_of(thefts, p) for p in protocols}
    overall = {p: {"auc": _auc(pos[p], neg[p]), "n": len(pos[p]), **_rates(pos[p], "tpr")} for p in protocols}
    failed = [{"id": r.entry.id, "name": r.entry.title, "seed": r.seed, "test_accuracy": r.test_accuracy,
               "victim_accuracy": r.victim_accuracy, "agreement": r.agreement,
               "p_values": {p: r.verdict.evidence[p]["p_value"] for p in r.verdict.evidence}}
              for r in derived if not r.counts_as_theft]
    curve: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r, c in zip(bench.results, bench.curves, strict=True):
        if not r.counts_as_theft:
            continue
        for p, by_b in c.items():
            full = bench.full_queries.get(p)
            points = {**by_b, **({full: r.verdict.evidence[p]["p_value"]} if full and p in r.verdict.evidence else {})}
            for b, pv in points.items():
                curve.setdefault(p, {}).setdefault(r.entry.group, {}).setdefault(str(b), []).append(pv)
    curve_rows = {p: {g: {b: {"median_p": float(np.median(v)), "tpr_0.01": float(np.mean([x < 0.01 for x in v]))}
                          for b, v in sorted(by_b.items(), key=lambda kv: int(kv[0]))}
                      for g, by_b in gs.items()} for p, gs in curve.items()}
    to_detect = {p: {g: next((int(b) for b, s in pts.items() if s["tpr_0.01"] >= 0.95), None)
                     for g, pts in gs.items()} for p, gs in curve_rows.items()}
    return {"groups": by_group, "innocents": fpr, "controls": control_rates, "failed_thefts": failed,
            "overall": overall, "budget_curve": curve_rows, "queries_to_detect": to_detect,
            "full_queries": bench.full_queries, "times": bench.times, "useful_threshold": USEFUL}


def markdown(bench: BenchResult, summary: dict[str, Any]) -> str:
    """The benchmark's tables in markdown."""
    protocols = bench.protocols()
    lines = [f"# Benchmark: {bench.meta.get('victim', 'victim')}", "",
             f"{bench.meta.get('date', '')}; seeds {bench.meta.get('seeds')}; {len(bench.results)} suspects; "
             f"machine: {bench.meta.get('machine', '?')}", "",
             f"Thefts that count (derived from the victim, test accuracy >= {USEFUL:.0%} of the victim's) per attack "
             "type: AUC against the innocents / TPR at 0.01 / TPR at 0.001 / median p.  'useful' counts them among "
             "the type's suspects; agreement with the victim is beside them, never a filter.", "",
             "| attack type | survives | useful | agreement | " + " | ".join(protocols) + " |",
             "|---|---|---|---|" + "---|" * len(protocols)]
    for row in summary["groups"]:
        cells = []
        for p in protocols:
            s = row["protocols"].get(p)
            cells.append("-" if s is None else f"{_two_places(s['auc'])} / {s['tpr_0.01']:.2f} / "
                         f"{s['tpr_0.001']:.2f} / {format_p(s['median_p'])}")
        lines.append(f"| {row['group']} | {', '.join(row['survives'])} | {row['useful']}/{row['suspects']} | "
                     f"{row['agreement']:.2f} | " + " | ".join(cells) + " |")
    over = summary["overall"]
    lines.append("| **all thefts that count** | | | | " + " | ".join(
        f"{_two_places(over[p]['auc'])} / {_two_places(over[p]['tpr_0.01'])} / {_two_places(over[p]['tpr_0.001'])}"
        for p in protocols) + " |")
    inn = summary["innocents"]
    lines += ["", "Innocent models: FPR at 0.01 / FPR at 0.001 / FPR at 0.05 / smallest p.", "",
              "| | " + " | ".join(protocols) + " |", "|---|" + "---|" * len(protocols),
              f"| innocents (n = {max((v['n'] for v in inn.values()), default=0)}) | " + " | ".join(
                  f"{_two_places(inn[p]['fpr_0.01'])} / {_two_places(inn[p]['fpr_0.001'])} / "
                  f"{_two_places(inn[p]['fpr_0.05'])} / {format_p(inn[p]['min_p'])}" for p in protocols) + " |"]
    ctl = summary.get("controls") or {}
    if ctl:
        n = max(v["n"] for v in ctl.values())
        lines += [f"| controls: nothing of the victim survives (n = {n}) | " + " | ".join(
            "-" if p not in ctl else f"{_two_places(ctl[p]['flagged_0.01'])} / "
            f"{_two_places(ctl[p]['flagged_0.001'])} / {_two_places(ctl[p]['flagged_0.05'])} / "
            f"{format_p(ctl[p]['min_p'])}" for p in protocols) + " |"]
    failed = summary.get("failed_thefts") or []
    if failed:
        lines += ["", "Thefts that failed (not useful: test accuracy below "
                  f"{USEFUL:.0%} of the victim's), reported, not counted:", ""]
        lines += [f"- {f['name']} (seed {f['seed']}): test accuracy {f['test_accuracy']:.2f} (victim "
                  f"{f['victim_accuracy']:.2f}), agreement {f['agreement']:.2f}" for f in failed]
    lines += ["", "Queries each protocol asks at full budget: " + ", ".join(
        f"{p} {bench.full_queries.get(p, 0):,}" for p in protocols), ""]
    if summary["queries_to_detect"]:
        lines += ["Smallest budget at which >= 95 % of a type's counted thefts reach p < 0.01 ('-': not reached):",
                  "", "| attack type | " + " | ".join(summary["queries_to_detect"]) + " |",
                  "|---|" + "---|" * len(summary["queries_to_detect"])]
        for g in [row["group"] for row in summary["groups"]]:
            lines.append(f"| {g} | " + " | ".join(str(v.get(g) or "-") for v in summary["queries_to_detect"].values())
                         + " |")
        lines.append("")
    lines += ["Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary["times"].items()), ""]
    return "\n".join(lines)


def _two_places(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def figures(bench: BenchResult, summary: dict[str, Any]):
    """(ROC figure: counted thefts vs innocents per protocol, budget figure: share caught at 0.01 per budget)."""
    import plotly.graph_objects as go

    roc = go.Figure()
    innocents = [r for r in bench.results if r.role == "innocent"]
    thefts = [r for r in bench.results if r.counts_as_theft]
    for p in bench.protocols():
        pos = [_score(r.verdict.evidence[p]["p_value"]) for r in thefts if p in r.verdict.evidence]
        neg = [_score(r.verdict.evidence[p]["p_value"]) for r in innocents if p in r.verdict.evidence]
        if not pos or not neg:
            continue
        cuts = np.unique(np.r_[pos, neg, np.inf])[::-1]
        tpr = [np.mean(np.array(pos) >= c) for c in cuts]
        fpr = [np.mean(np.array(neg) >= c) for c in cuts]
        roc.add_trace(go.Scatter(x=[0, *fpr, 1], y=[0, *tpr, 1], mode="lines", line_shape="hv",
                                 name=f"{p} (AUC {_two_places(summary['overall'][p]['auc'])})"))
    roc.update_layout(title="ROC: thefts (derived and useful) vs innocent models",
                      xaxis_title="false-positive rate (innocents)",
                      yaxis_title="true-positive rate (thefts)", template="plotly_white", width=720, height=520)
    budget = go.Figure()
    for p, gs in summary["budget_curve"].items():
        pts: dict[int, list[float]] = {}
        for by_b in gs.values():
            for b, s in by_b.items():
                pts.setdefault(int(b), []).append(s["tpr_0.01"])
        xs = sorted(pts)
        budget.add_trace(go.Scatter(x=xs, y=[float(np.mean(pts[x])) for x in xs], mode="lines+markers", name=p))
    budget.update_layout(title="Query budget: share of thefts caught at p < 0.01 (mean over attack types)",
                         xaxis_title="black-box queries", yaxis_title="share caught", xaxis_type="log",
                         template="plotly_white", width=720, height=460)
    return roc, budget


def write_bench(bench: BenchResult, out: str | Path) -> dict[str, Path]:
    """bench.json (every suspect and the summary), bench.md (the tables), bench.html (the figures)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(bench)
    paths = {"json": out / "bench.json", "markdown": out / "bench.md", "html": out / "bench.html"}
    rows = [{**r.to_dict(), "budget_curve": c} for r, c in zip(bench.results, bench.curves, strict=True)]
    paths["json"].write_text(json.dumps({"meta": bench.meta, "summary": summary, "suspects": rows}, indent=1))
    paths["markdown"].write_text(markdown(bench, summary))
    roc, budget = figures(bench, summary)
    html = (roc.to_html(full_html=False, include_plotlyjs=True)
            + budget.to_html(full_html=False, include_plotlyjs=False))
    paths["html"].write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>Holmes forensics benchmark"
                             f"</title></head><body>{html}</body></html>")
    return paths
