"""The report's opening in plain words: what the verdict means under a protocol (:func:`meaning`), the executive
summary of a record (:func:`executive_summary`: a headline sentence, one line per suspect, the auditor's note) and
what each verdict compared (:func:`compared`)."""
from __future__ import annotations

import datetime
from typing import Any

from ..audit.verdict import Reading, describe_combined, format_p, headline
from ..errors import ForensicsError
from ..protocols.registry import get_protocol


def record_alpha(report: dict[str, Any]) -> float:
    s = report.get("suspects") or []
    return float(report.get("audit", {}).get("config", {}).get("alpha") or (s[0]["alpha"] if s else 0.01))


def _protocol(report: dict[str, Any]) -> str:
    s = report.get("suspects") or []
    return str(report.get("audit", {}).get("config", {}).get("protocol") or (s[0]["protocol"] if s else "membership"))


def recorded_reading(s: dict[str, Any], alpha: float) -> Reading:
    """A recorded suspect's verdict under its chosen protocol at the audit's alpha (what it was decided on)."""
    return Reading(s["protocol"], float(s["p_value"]), s.get("delta_p"), int(s.get("m") or 0), alpha)


def _calibrated(protocol: str) -> bool:
    try:
        return get_protocol(protocol).calibrated
    except ForensicsError:  # a record from a build with other protocols
        return False


def meaning(protocol: str, alpha: float) -> str:
    """What a verdict means, in one or two sentences."""
    if protocol == "membership":
        what = ("fits your model's private training samples better than unseen samples of the same collection, "
                "beyond what chance allows")
    elif protocol == "lineage":
        what = ("carries what training changed in your model's weights beyond what an independent run of your own "
                "recipe shares with it")
    elif protocol == "sequential":
        what = ("fits your model's private training samples better than unseen samples of the same difficulty, "
                "asked pair by pair until the evidence decided (the p-value stays valid however early the audit "
                "stopped)")
    elif protocol == "combined":
        what = ("fits your private training samples better than unseen ones or (where its weights are there) carries "
                "what training changed in your model's weights; the two tests share alpha (Bonferroni)")
    else:
        what = "scores beyond what chance allows on the audit's test"
    s = (f"Evidence of derivation (p < alpha = {alpha:g}) means the suspect {what}: statistical evidence that it "
         "was derived from your model or trained on its private data")
    if _calibrated(protocol):
        s += f"; an innocent model is wrongly flagged at most {alpha * 100:g}% of the time"
    else:
        s += (f" (the {protocol!r} protocol's p-values are not calibrated: it has accused innocent models, so read "
              "this verdict with care)")
    return s + (". No evidence of derivation is not proof of innocence: a copy that was changed a lot (for example "
                "distilled through other data) can weaken the signal.")


def executive_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The report's opening in plain words: ``headline`` (one sentence), ``items`` (one per suspect, and one per
    suspect that could not be verified: ``name``, ``stolen`` True/False/None, ``text``), ``meaning`` and ``note``."""
    alpha = record_alpha(report)
    suspects = report.get("suspects") or []
    errors = report.get("errors") or {}
    items = []
    for s in suspects:
        r = recorded_reading(s, alpha)
        text = "evidence of derivation" if r.stolen else "no evidence of derivation"
        items.append({"name": s["name"], "stolen": r.stolen, "text": f"{text} (p = {format_p(r.p_value)})"})
    for name, why in errors.items():
        items.append({"name": name, "stolen": None, "text": f"could not be verified ({why})"})
    return {"headline": headline([recorded_reading(s, alpha) for s in suspects], alpha, failed=len(errors)),
            "items": items, "meaning": meaning(_protocol(report), alpha),
            "note": (report.get("case") or {}).get("note")}


def compared(s: dict[str, Any]) -> str:
    """What the suspect's verdict compared, in words (e.g. "loss on 300 training vs 400 unseen samples")."""
    e = (s.get("evidence") or {}).get(s.get("protocol"), {})
    if s.get("protocol") == "membership" and "members" in e:
        score = "errors" if e.get("score") == "error" else "loss"
        return (f"{score} on {e['members']} training vs {e['controls']} unseen samples"
                + (" (labels only)" if s.get("label_only") else ""))
    if s.get("protocol") == "holmes" and "m" in e:
        return f"Holmes meta-classifier P(stolen) on {e['m']} held-out rows of D_s, against 0.5"
    if s.get("protocol") == "paper" and "m" in e:
        return f"paper protocol: {e.get('draws', '?')} draws of {e['m']} rows of D_s"
    if s.get("protocol") == "lineage" and "replicas" in e:
        return (f"what training changed in {e['weights']:,} weights: correlation {e['corr_victim']:.2f} with yours, "
                f"at most {e['corr_replicas_max']:.2f} with {e['replicas']} re-runs of your recipe")
    if s.get("protocol") == "combined" and "components" in e:
        return describe_combined(e, float(s.get("alpha", 0.01)))
    if s.get("protocol") == "sequential" and "queries" in e:
        how = "through its API" if "endpoint" in e else "in the audit's order"
        score = "errors (labels only)" if e.get("score") == "error" else "loss"
        return (f"sequential test, {score}: {e['queries']} queries asked {how} (pairs of a training and an unseen "
                f"sample of equal difficulty) until {'the evidence decided' if e.get('decision') else 'it stopped'}")
    return f"the {s.get('protocol')!r} protocol on {s.get('m')} samples"


def when_text(created: str | None) -> str:
    if not created:
        return ""
    try:
        t = datetime.datetime.fromisoformat(created)
    except ValueError:
        try:  # records before ISO offsets: +0200
            t = datetime.datetime.strptime(created, "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return created
    if t.tzinfo is None:
        return t.strftime("%d %B %Y, %H:%M")
    off = t.strftime("%z")
    return t.strftime("%d %B %Y, %H:%M") + f" (UTC{off[:3]}:{off[3:]})"
