"""The benchmark and the stress test: an attack zoo built from a victim, every protocol and every peer
baseline run on exactly the same suspects and answers, and the error rates that result.

    result = run_bench(audits, contexts, entries, seeds)    # or bench_demo(...) / stress_test(...)
    write_bench(result, out_dir)                            # bench.json, bench.md, bench.html

Per attack type: AUC of the p-values against the innocent models, TPR at alpha 0.01 / 0.05 over the faithful
thefts (top-1 agreement with the victim >= :data:`FAITHFUL`; a theft that failed is reported, never counted as a
hard positive), median p; per protocol: FPR on the innocents at 0.01 / 0.05; the query-budget curve (the
membership test and the label baselines re-run on random subsets of their queries, :func:`budget_view`); the
wall time of every stage.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import demo_assets
from .audit import Audit
from .baselines import victim_mistakes
from .data import ImageSet, concat, synthetic_images
from .errors import ConfigError, DataSourceError
from .progress import Progress
from .protocols import Protocol, get_protocol, list_protocols
from .shadows import MembershipDesign
from .verify import format_p
from .zoo import DEMO_ZOO, OTHER_FOUNDATION, ZooContext, ZooEntry, ZooResult, demo_zoo_context, verify_entry

FAITHFUL = 0.8                            # top-1 agreement with the victim a theft needs to count as a hard positive
ALPHAS = (0.01, 0.05)
BUDGETS = (100, 200, 500, 1000, 2000)     # query budgets of the curve (each below a protocol's full set)
SMALL_ZOO = ("direct copy", "fine-tune, 3 epochs lr 1e-3", "fine-tune, API top-1", "distill, T = 4",
             "innocent, victim's recipe", "innocent, other seed")
STRESS_ZOO = ("direct copy", "fine-tune, 1 epoch lr 1e-4", "fine-tune, 3 epochs lr 1e-3",
              "fine-tune with augmentation", "fine-tune, API top-1", "prune 20 %", "int8 weights",
              "distill, T = 4", "label-query extraction", "label-query extraction, API top-1",
              "innocent, victim's recipe", "innocent, other seed", "innocent, half the data",
              "innocent, 12 epochs lr 3e-3", "innocent, on the thief's data, 10 epochs lr 2e-3")


def zoo_entries(names: list[str] | tuple[str, ...] | None) -> list[ZooEntry]:
    """Zoo entries by name (``None`` or ``["all"]``: the whole standard zoo); an unknown name is an error."""
    if not names or list(names) == ["all"]:
        return list(DEMO_ZOO)
    by_name = {e.name: e for e in DEMO_ZOO}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ConfigError(f"unknown zoo entries {unknown}; choose among: " + "; ".join(by_name))
    return [by_name[n] for n in names]


def budget_view(audit: Audit, budget: int, on: str = "both") -> Audit:
    """The audit as if a protocol had asked only ``budget`` queries, drawn at random independently of any suspect
    (so every p-value stays valid): ``on="both"`` half members and half controls (the membership test),
    ``"controls"`` controls only, ``"mistakes"`` controls the victim gets wrong (see ``Protocol.budget_on``)."""
    rng = np.random.default_rng([audit.config.seed, budget, 7])
    memo = {k: v for k, v in audit.memo.items() if k == "victim_and_references"}
    d = audit.membership
    if on == "both":
        return replace(audit, membership=d.subsample(budget, rng), memo=memo)
    if on not in ("controls", "mistakes"):
        raise ConfigError(f"unknown budget target {on!r}; use 'both', 'controls' or 'mistakes'")
    rows = victim_mistakes(audit) if on == "mistakes" else np.arange(len(d.control_rows))
    pick = np.sort(rng.permutation(rows)[:budget])
    design = MembershipDesign(d.member_rows, d.control_rows[pick], d.reference_loss_members,
                              d.reference_loss_controls[pick])
    return replace(audit, membership=design, memo=memo)


def budget_protocols() -> list[Protocol]:
    """The protocols whose queries a budget thins out; the Holmes protocols ask D_s (fixed) and Dataset
    Inference its own walks."""
    return [p for p in list_protocols(baselines=True) if p.budget_on]


def budget_curve(audit: Audit, result: ZooResult, budgets: tuple[int, ...] = BUDGETS) -> dict[str, dict[int, float]]:
    """p-value of each budget protocol at each budget below its full query count."""
    out: dict[str, dict[int, float]] = {}
    answers = result.answers
    label_only = answers.ndim == 1
    for p in budget_protocols():
        evidence = result.verdict.evidence.get(p.name)
        if evidence is None:  # it could not run on these answers
            continue
        full = p.query_count(evidence)
        for b in budgets:
            if b < full:
                view = budget_view(audit, b, p.budget_on)
                out.setdefault(p.name, {})[b] = float(p.run(view, answers, label_only, None)[0]["p_value"])
    return out


@dataclass
class BenchResult:
    results: list[ZooResult]
    curves: list[dict[str, dict[int, float]]]        # per result: protocol -> budget -> p
    full_queries: dict[str, int]                     # protocol -> queries it asked at full budget
    times: dict[str, float]                          # seconds per stage
    meta: dict[str, Any] = field(default_factory=dict)

    def protocols(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.results:
            seen.update(dict.fromkeys(r.verdict.evidence))
        return list(seen)


def run_bench(audits: dict[int, Audit], contexts: dict[int, ZooContext], entries: list[ZooEntry],
              seeds: list[int], *, baselines: bool = True, budgets: tuple[int, ...] = BUDGETS,
              progress: Progress | None = None, on_result: Callable[[ZooResult], None] | None = None,
              times: dict[str, float] | None = None) -> BenchResult:
    """Every entry for every seed against the audit of that seed; ``times`` may carry earlier stages' seconds."""
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError("zoo entries need unique names")
    times = dict(times or {})
    results, curves, full_queries = [], [], {}
    for seed in seeds:
        for entry in entries:
            r = verify_entry(entry, contexts[seed], seed, baselines=baselines, progress=progress)
            t = time.perf_counter()
            curves.append(budget_curve(audits[seed], r, budgets))
            r.times["budget curve"] = time.perf_counter() - t
            for k, v in r.times.items():
                times[k] = times.get(k, 0.0) + v
            for name, e in r.verdict.evidence.items():
                full_queries[name] = max(full_queries.get(name, 0), get_protocol(name).query_count(e))
            results.append(r)
            if on_result is not None:
                on_result(r)
    return BenchResult(results, curves, full_queries, times)


# -- summaries --------------------------------------------------------------------------------------------------
def _score(p: float) -> float:
    return -np.log10(max(p, 1e-300))


def _auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a theft's p < an innocent's p), ties half: the AUC of -log10 p."""
    if not pos or not neg:
        return None
    a, b = np.array([_score(p) for p in pos]), np.array([_score(p) for p in neg])
    return float(((a[:, None] > b[None]).sum() + 0.5 * (a[:, None] == b[None]).sum()) / (len(a) * len(b)))


def summarize(bench: BenchResult) -> dict[str, Any]:
    """Per attack type and protocol: AUC, TPR, median p; per protocol: FPR and min p on the innocents; the budget
    curve (share of faithful thefts caught at 0.01 per budget, per attack type); queries to reach p < 0.01."""
    protocols = bench.protocols()
    innocents = [r for r in bench.results if r.entry.kind == "innocent"]
    thefts = [r for r in bench.results if r.entry.kind == "stolen"]
    groups = list(dict.fromkeys(r.entry.group for r in thefts))
    neg = {p: [r.verdict.evidence[p]["p_value"] for r in innocents if p in r.verdict.evidence] for p in protocols}
    by_group = []
    for g in groups:
        rs = [r for r in thefts if r.entry.group == g]
        faithful = [r for r in rs if r.agreement >= FAITHFUL]
        row: dict[str, Any] = {"group": g, "suspects": len(rs), "faithful": len(faithful),
                               "agreement": float(np.mean([r.agreement for r in rs])), "protocols": {}}
        for p in protocols:
            ps = [r.verdict.evidence[p]["p_value"] for r in faithful if p in r.verdict.evidence]
            if not ps:
                continue
            row["protocols"][p] = {"auc": _auc(ps, neg[p]), "median_p": float(np.median(ps)), "n": len(ps),
                                   **{f"tpr_{a}": float(np.mean([x < a for x in ps])) for a in ALPHAS}}
        by_group.append(row)
    fpr = {p: {"n": len(v), "min_p": float(min(v)) if v else None,
               **{f"fpr_{a}": float(np.mean([x < a for x in v])) if v else None for a in ALPHAS}}
           for p, v in neg.items()}
    overall = {}
    faithful_all = [r for r in thefts if r.agreement >= FAITHFUL]
    for p in protocols:
        ps = [r.verdict.evidence[p]["p_value"] for r in faithful_all if p in r.verdict.evidence]
        overall[p] = {"auc": _auc(ps, neg[p]), "n": len(ps),
                      **{f"tpr_{a}": float(np.mean([x < a for x in ps])) if ps else None for a in ALPHAS}}
    curve: dict[str, dict[str, dict[str, float]]] = {}
    for r, c in zip(bench.results, bench.curves, strict=True):
        if r.entry.kind != "stolen" or r.agreement < FAITHFUL:
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
    return {"groups": by_group, "innocents": fpr, "overall": overall, "budget_curve": curve_rows,
            "queries_to_detect": to_detect, "full_queries": bench.full_queries, "times": bench.times,
            "faithful_threshold": FAITHFUL}


def markdown(bench: BenchResult, summary: dict[str, Any]) -> str:
    """The benchmark's tables in markdown."""
    protocols = bench.protocols()
    lines = [f"# Benchmark: {bench.meta.get('victim', 'victim')}", "",
             f"{bench.meta.get('date', '')}; seeds {bench.meta.get('seeds')}; {len(bench.results)} suspects; "
             f"machine: {bench.meta.get('machine', '?')}", "",
             f"Faithful thefts (top-1 agreement >= {FAITHFUL}) per attack type: AUC against the innocents / TPR at "
             "0.01 / median p.", "",
             "| attack type | faithful | " + " | ".join(protocols) + " |",
             "|---|---|" + "---|" * len(protocols)]
    for row in summary["groups"]:
        cells = []
        for p in protocols:
            s = row["protocols"].get(p)
            cells.append("-" if s is None else
                         f"{_f(s['auc'])} / {s['tpr_0.01']:.2f} / {format_p(s['median_p'])}")
        lines.append(f"| {row['group']} | {row['faithful']}/{row['suspects']} | " + " | ".join(cells) + " |")
    over = summary["overall"]
    lines.append("| **all faithful thefts** | | " + " | ".join(
        f"{_f(over[p]['auc'])} / {_f(over[p]['tpr_0.01'])}" for p in protocols) + " |")
    inn = summary["innocents"]
    lines += ["", "Innocent models: FPR at 0.01 / FPR at 0.05 / smallest p.", "",
              "| | " + " | ".join(protocols) + " |", "|---|" + "---|" * len(protocols),
              f"| innocents (n = {max((v['n'] for v in inn.values()), default=0)}) | " + " | ".join(
                  f"{_f(inn[p]['fpr_0.01'])} / {_f(inn[p]['fpr_0.05'])} / {format_p(inn[p]['min_p'])}"
                  for p in protocols) + " |",
              "", "Queries each protocol asks at full budget: " + ", ".join(
                  f"{p} {bench.full_queries.get(p, 0):,}" for p in protocols), ""]
    if summary["queries_to_detect"]:
        lines += ["Smallest budget at which >= 95 % of a type's faithful thefts reach p < 0.01 ('-': not reached):",
                  "", "| attack type | " + " | ".join(summary["queries_to_detect"]) + " |",
                  "|---|" + "---|" * len(summary["queries_to_detect"])]
        for g in [row["group"] for row in summary["groups"]]:
            lines.append(f"| {g} | " + " | ".join(str(v.get(g) or "-") for v in summary["queries_to_detect"].values())
                         + " |")
        lines.append("")
    lines += ["Wall time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in summary["times"].items()), ""]
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def figures(bench: BenchResult, summary: dict[str, Any]):
    """(ROC figure: faithful thefts vs innocents per protocol, budget figure: share caught at 0.01 per budget)."""
    import plotly.graph_objects as go

    roc = go.Figure()
    innocents = [r for r in bench.results if r.entry.kind == "innocent"]
    thefts = [r for r in bench.results if r.entry.kind == "stolen" and r.agreement >= FAITHFUL]
    for p in bench.protocols():
        pos = [_score(r.verdict.evidence[p]["p_value"]) for r in thefts if p in r.verdict.evidence]
        neg = [_score(r.verdict.evidence[p]["p_value"]) for r in innocents if p in r.verdict.evidence]
        if not pos or not neg:
            continue
        cuts = np.unique(np.r_[pos, neg, np.inf])[::-1]
        tpr = [np.mean(np.array(pos) >= c) for c in cuts]
        fpr = [np.mean(np.array(neg) >= c) for c in cuts]
        roc.add_trace(go.Scatter(x=[0, *fpr, 1], y=[0, *tpr, 1], mode="lines", line_shape="hv",
                                 name=f"{p} (AUC {_f(summary['overall'][p]['auc'])})"))
    roc.update_layout(title="ROC: faithful thefts vs innocent models", xaxis_title="false-positive rate (innocents)",
                      yaxis_title="true-positive rate (thefts)", template="plotly_white", width=720, height=520)
    budget = go.Figure()
    for p, gs in summary["budget_curve"].items():
        pts: dict[int, list[float]] = {}
        for by_b in gs.values():
            for b, s in by_b.items():
                pts.setdefault(int(b), []).append(s["tpr_0.01"])
        xs = sorted(pts)
        budget.add_trace(go.Scatter(x=xs, y=[float(np.mean(pts[x])) for x in xs], mode="lines+markers", name=p))
    budget.update_layout(title="Query budget: share of faithful thefts caught at p < 0.01 (mean over attack types)",
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


# -- the thief's data, and the two entry points --------------------------------------------------------------------
def _image_hashes(images: ImageSet) -> set[str]:
    """Hashes of the decoded RGB pixels, so a PNG file and the same image in memory are one image."""
    return {hashlib.sha256(np.ascontiguousarray(np.asarray(images.pil(i))).tobytes()).hexdigest()
            for i in range(len(images))}


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
            skipped.append(f"{e.name}: needs another foundation (--other-foundation)")
        else:
            keep.append(e)
    return keep, skipped


def demo_contexts(seeds: list[int], store, *, quick: bool = False, progress: Progress | None = None
                  ) -> tuple[dict[int, Audit], dict[int, ZooContext]]:
    """The demo's audits (one per seed) and zoo contexts."""
    from .spec import AuditSpec, open_audit

    audits = {s: open_audit(AuditSpec.demo(s, quick=quick), store, progress=progress) for s in seeds}
    return audits, {s: demo_zoo_context(a, quick=quick) for s, a in audits.items()}


def demo_meta(seeds: list[int], quick: bool) -> dict[str, Any]:
    return {"victim": "the demo victim (EfficientNet-Lite0 on the demo data" + (", reduced)" if quick else ")"),
            "seeds": seeds, "data": {k: len(v) for k, v in demo_assets.zoo_data(quick).items()}}


def stress_rows(bench: BenchResult, protocol: str, alpha: float) -> list[dict[str, Any]]:
    """Per zoo entry: how often the audit's protocol flags it at ``alpha`` over the seeds, its median p and
    fidelity - the detection power (thefts) or false-positive rate (innocents) an owner can expect."""
    rows: dict[str, dict[str, Any]] = {}
    for r in bench.results:
        row = rows.setdefault(r.entry.name, {"name": r.entry.name, "group": r.entry.group, "kind": r.entry.kind,
                                             "p": [], "agreement": []})
        e = r.verdict.evidence.get(protocol)
        if e is not None:
            row["p"].append(e["p_value"])
        row["agreement"].append(r.agreement)
    out = []
    for row in rows.values():
        ps = row.pop("p")
        agreement = float(np.mean(row.pop("agreement")))
        flagged = sum(p < alpha for p in ps)
        out.append({**row, "agreement": agreement, "flagged": flagged, "runs": len(ps),
                    "median_p": float(np.median(ps)) if ps else None, "faithful": agreement >= FAITHFUL})
    return out


def stress_summary(bench: BenchResult, record: dict[str, Any], alpha: float) -> str:
    """The stress test in words: detection power per simulated attack beside the audit's own verdicts."""
    protocol = record.get("spec", {}).get("config", {}).get("protocol", "membership")
    lines = [f"Stress test of {bench.meta.get('victim')}: would this audit ({protocol}, alpha = {alpha}) catch these?",
             "", f"{'simulated suspect':52s} {'kind':8s} {'agree':>5s} {'flagged':>8s} {'median p':>9s}"]
    for row in stress_rows(bench, protocol, alpha):
        note = "" if row["kind"] == "innocent" or row["faithful"] else "  (theft failed: low agreement)"
        lines.append(f"{row['name'][:52]:52s} {row['kind']:8s} {row['agreement']:5.2f} "
                     f"{row['flagged']:>3d} of {row['runs']:<2d} {format_p(row['median_p']):>9s}{note}")
    verdicts = record.get("suspects", [])
    if verdicts:
        lines += ["", "The audit's own verdicts:"]
        lines += [f"  {s['name'][:50]:50s} p = {format_p(s['p_value'])}  {s['verdict']}" for s in verdicts]
    lines += ["", "A 'not stolen' verdict rules out the thefts flagged in (almost) every run above; it says little "
              "about kinds flagged rarely."]
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
    result.meta = {"victim": audit.victim.source, "seeds": list(seeds), "entries": [e.name for e in entries],
                   "skipped": skipped, "protocol": audit.config.protocol, "alpha": audit.config.alpha}
    return result


def stress_figure(bench: BenchResult, protocol: str, alpha: float):
    """Every simulated suspect's p-value (log scale) per attack, thefts and innocents in two colours, alpha marked."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for kind, colour in (("stolen", "#b3261e"), ("innocent", "#1b6e3a")):
        rs = [r for r in bench.results if r.entry.kind == kind and protocol in r.verdict.evidence]
        if rs:
            fig.add_trace(go.Box(
                y=[r.entry.name for r in rs], x=[max(r.verdict.evidence[protocol]["p_value"], 1e-300) for r in rs],
                name="simulated thefts" if kind == "stolen" else "simulated innocents", orientation="h",
                boxpoints="all", pointpos=0, jitter=0.3, fillcolor="rgba(0,0,0,0)", line=dict(color="rgba(0,0,0,0)"),
                marker=dict(color=colour, size=9), hovertemplate="%{y}<br>p = %{x:.2e}<extra></extra>"))
    fig.add_vline(x=alpha, line_dash="dash", line_color="#444",
                  annotation_text=f"alpha = {alpha}: left of the line = flagged as stolen", annotation_position="top")
    names = list(dict.fromkeys(r.entry.name for r in bench.results))
    fig.update_layout(xaxis_type="log", xaxis_exponentformat="e", xaxis_title=f"p-value ({protocol} test), log scale",
                      template="plotly_white",
                      height=max(320, 34 * len(names) + 140), margin=dict(l=10, r=10, t=60, b=40),
                      legend=dict(orientation="h", y=1.08), yaxis=dict(categoryorder="array",
                                                                        categoryarray=names[::-1]))
    return fig


# -- the zoo on a Ray cluster --------------------------------------------------------------------------------------
_CONTEXTS: dict[str, tuple[dict[int, Audit], dict[int, ZooContext]]] = {}  # per worker process


def build_entry_in_worker(seed: int, name: str, quick: bool, store_root: str, baselines: bool) -> dict[str, Any]:
    """A Ray task: build and verify one zoo entry of the demo against the audit of ``seed``, through the shared store
    (its suspect's training, logits and answers land there); returns its seconds and p-values."""
    from .store import ArtifactStore

    key = json.dumps([seed, quick, store_root])
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = demo_contexts([seed], ArtifactStore(store_root), quick=quick)
    r = verify_entry(zoo_entries([name])[0], _CONTEXTS[key][1][seed], seed, baselines=baselines)
    return {"times": r.times, "p_values": {p: e.get("p_value") for p, e in r.verdict.evidence.items()}}


def fan_out_zoo(entries: list[ZooEntry], seeds: list[int], *, quick: bool, store_root: str | Path, baselines: bool,
                address: str | None, workers: int | None = None,
                on_done: Callable[[Any], None] | None = None) -> list[str]:
    """Build every (seed, entry) of the demo's zoo as Ray tasks (:mod:`.fanout`), so that the in-process
    :func:`run_bench` afterwards only reads the store; returns the errors of tasks that failed (they are then built
    in process)."""
    from .fanout import ray_map

    items = [(s, e.name) for s in seeds for e in entries]
    errors = []
    for o in ray_map(build_entry_in_worker, items, lambda it: (it[0], it[1], quick, str(store_root), baselines),
                     address=address, workers=workers):
        if o.error:
            errors.append(f"{o.item[1]} #{o.item[0]}: {o.error}")
        if on_done is not None:
            on_done(o)
    return errors
