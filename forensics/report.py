"""The audit report: one data object, rendered to JSON (the audit record) and self-contained HTML."""
from __future__ import annotations

import html
import json
import platform
import time
from typing import Any, Sequence

from .audit import Audit
from .verify import Verdict, format_p

__all__ = ["build_report", "case_report", "render_html", "audit_figures", "library_versions"]


def library_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("holmes-forensics", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn",
                "huggingface-hub", "safetensors", "pandas"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    from ._version import __version__
    out["forensics"] = __version__
    return out


def build_report(audit: Audit, verdicts: Sequence[tuple[str, str | None, Verdict]], *,
                 extra: dict[str, Any] | None = None,
                 sources: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON audit record: fingerprints, revisions, data, configs, seeds, versions, per-sample
    scores and p-values.  Its ``spec`` says how to rebuild the audit (sources and data locations) and
    ``sources`` how to find each suspect again (model source or stored answers file), which is what
    ``holmes-forensics reverify`` needs."""
    sources = sources or {}
    return {
        "format": "holmes-forensics audit record v1",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "spec": audit.spec.to_dict(),
        "audit": audit.summary(),
        "suspects": [{"name": name, "kind": kind, **sources.get(name, {}), **v.to_dict(per_sample=True)}
                     for name, kind, v in verdicts],
        "versions": library_versions(),
        **(extra or {}),
    }


def case_report(case) -> dict[str, Any]:
    """The audit record of a :class:`~forensics.case.Case` that has run."""
    pairs = case.ordered_verdicts()
    return build_report(case.audit, [(s.name, s.kind, v) for s, v in pairs],
                        sources={s.name: {"source": s.source, "revision": s.revision, "answers": s.answers,
                                          "query_set": s.query_set} for s, _ in pairs})


def audit_figures(audit: Audit, verdicts: Sequence[Verdict]) -> list:
    from . import plots

    figs = [plots.pvalue_figure(verdicts, audit.config.alpha), plots.membership_figure(verdicts),
            plots.loss_order_figure(audit), plots.output_difference_figure(audit, verdicts),
            plots.projection_figure(audit, verdicts), plots.meta_scores_figure(audit, verdicts),
            plots.training_curves_figure(audit.shadows.histories)]
    return figs


def render_html(report: dict[str, Any], figures: Sequence[Any] = ()) -> str:
    """A self-contained HTML page (plotly.js inlined once, no external assets) summarising the audit."""
    plots_html = "".join(f.to_html(full_html=False, include_plotlyjs=(i == 0), config={"displaylogo": False})
                         for i, f in enumerate(figures))
    a = report["audit"]
    rows = []
    for s in report["suspects"]:
        badge = "#b3261e" if s["verdict"] == "stolen" else "#1b6e3a"
        dp = "-" if s["delta_p"] is None else f"{s['delta_p']:+.3f}"
        rows.append(
            f"<tr><td>{html.escape(s['name'])}</td><td>{html.escape(str(s.get('kind') or ''))}</td>"
            f"<td>{format_p(s['p_value'])}</td><td>{dp}</td>"
            f"<td><span style='background:{badge};color:#fff;padding:2px 8px;border-radius:8px'>"
            f"{s['verdict']}</span></td>"
            f"<td>{format_p(s['evidence'].get('paper', {}).get('p_value'))}</td>"
            f"<td><code>{html.escape((s.get('fingerprint') or '')[:16])}</code></td></tr>")
    cfg = a["config"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Holmes forensics audit</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#1d2733}}
table{{border-collapse:collapse;width:100%}}td,th{{border-bottom:1px solid #dde3ea;padding:6px;text-align:left}}
code{{font-size:12px}}</style></head><body>
<h1>Holmes forensics &mdash; ownership audit</h1>
<p>Victim <code>{html.escape(a['victim']['source'])}</code> ({html.escape(a['victim']['arch'])},
fingerprint <code>{a['victim']['fingerprint'][:16]}</code>); protocol <b>{cfg['protocol']}</b>, alpha {cfg['alpha']},
seed {cfg['seed']}. D_s: {a['d_s_size']} samples; members {a['members']}, controls {a['controls']}.</p>
<table><tr><th>suspect</th><th>kind</th><th>p-value</th><th>dP</th><th>verdict</th><th>paper protocol p</th>
<th>fingerprint</th></tr>
{''.join(rows)}</table>
{plots_html}
<p>A p-value below alpha means the suspect fits the victim's private training samples better than unseen samples
of the same collection, beyond what chance allows: evidence that it was derived from the victim. A large p-value
is not proof of innocence.</p>
<details><summary>Audit record (JSON)</summary><pre>{html.escape(json.dumps(report, indent=1)[:200000])}</pre></details>
</body></html>"""
