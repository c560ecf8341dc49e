"""Two audits side by side (as Weights & Biases or TensorBoard compare runs): the settings where they differ, and
each suspect's p-value and verdict in both.  Plain rows from two audit records; the dashboard and a script draw
them."""
from __future__ import annotations

from typing import Any

from ..audit.verdict import format_p


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


SETTINGS = ("victim", "victim_revision", "foundation", "foundation_revision", "data", "heldout", "arch", "input_size",
            "quick", "config")


def settings_rows(a: dict[str, Any], b: dict[str, Any], *, all_rows: bool = False) -> list[dict[str, Any]]:
    """``{"setting", "A", "B"}`` for the audit settings (the record's ``spec``) that differ (all of them with
    ``all_rows``)."""
    fa = _flat({k: (a.get("spec") or {}).get(k) for k in SETTINGS})
    fb = _flat({k: (b.get("spec") or {}).get(k) for k in SETTINGS})
    rows = []
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key), fb.get(key)
        if all_rows or va != vb:
            rows.append({"setting": key.removeprefix("config."), "A": "-" if va is None else str(va),
                         "B": "-" if vb is None else str(vb)})
    return rows


def _verdict(s: dict[str, Any] | None) -> tuple[str, str]:
    if s is None or "p_value" not in s:
        return "-", "not verified"
    return format_p(s["p_value"]), "evidence of derivation" if s.get("verdict") == "stolen" else "no evidence"


def suspect_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per suspect of either audit (by name): its p-value and verdict in A and in B, and whether they agree."""
    sa = {s.get("name"): s for s in a.get("suspects") or [] if isinstance(s, dict)}
    sb = {s.get("name"): s for s in b.get("suspects") or [] if isinstance(s, dict)}
    rows = []
    for name in [*sa, *(n for n in sb if n not in sa)]:
        (pa, va), (pb, vb) = _verdict(sa.get(name)), _verdict(sb.get(name))
        rows.append({"suspect": str(name), "p (A)": pa, "verdict (A)": va, "p (B)": pb, "verdict (B)": vb,
                     "same verdict": "yes" if va == vb else "no"})
    return rows
