"""The checks an audit passes, beside its verdict (as Evidently or Deepchecks open with a pass/fail list): is the
held-out data unseen, is the protocol calibrated, are there enough samples, did the shadows work, and how strong is
this audit for this victim (the stress test's detection power per kind of theft, or "not measured yet").  A check is
data (:class:`Check`); the dashboard and the reports draw it."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..audit.opened import Audit
from ..protocols.registry import get_protocol

PASS, WARN, FAIL, NOT_MEASURED = "pass", "warn", "fail", "not measured"  # a check's status
MIN_SAMPLES = 100        # members and controls each: fewer give the membership test little power
MIN_TRIGGER = 0.5        # the poisoned shadow's attack success below which it did not learn the trigger


@dataclass(frozen=True)
class Check:
    """One check: ``status`` one of pass, warn, fail, not measured; ``detail`` says what was measured."""

    name: str
    status: str
    detail: str


def power_summary(rows: Sequence[dict[str, Any]], protocol: str, alpha: float, *, build: str | None = None,
                  ran_at: str | None = None) -> dict[str, Any]:
    """What a stress test says about an audit's power, to keep with the case: its rows
    (:func:`forensics.zoo.stress.stress_rows`), the protocol and alpha they were read at, the build they measured
    (the query set's fingerprint) and when."""
    keep = ("id", "name", "group", "kind", "role", "flagged", "runs", "median_p")
    return {"protocol": protocol, "alpha": alpha, "build": build, "ran_at": ran_at,
            "rows": [{k: r.get(k) for k in keep} for r in rows]}


def _power(power: dict[str, Any] | None, audit: Audit) -> list[Check]:
    if not power or not power.get("rows"):
        return [Check("Detection power for this victim", NOT_MEASURED,
                      "not measured yet: run 6 · Stress test to learn which kinds of theft this audit catches, so that "
                      "a 'no evidence' is read with its power")]
    rows = power["rows"]
    thefts = [r for r in rows if r.get("role") == "theft"]
    innocents = [r for r in rows if r.get("role") == "innocent"]
    out = []
    if thefts:
        missed = [r["name"] for r in thefts if r["flagged"] < r["runs"]]
        caught = len(thefts) - len(missed)
        detail = (f"{caught} of {len(thefts)} kinds of simulated theft flagged in every run at alpha = "
                  f"{power['alpha']:g}")
        if missed:
            detail += "; 'no evidence' does not rule out: " + "; ".join(missed)
        out.append(Check("Detection power for this victim", PASS if not missed else WARN, detail))
    if innocents:
        flagged = [r["name"] for r in innocents if r["flagged"]]
        out.append(Check("Simulated innocent models", PASS if not flagged else WARN,
                         f"{len(flagged)} of {len(innocents)} kinds flagged"
                         + (f" ({'; '.join(flagged)}): at alpha = {power['alpha']:g} about that share of innocents is "
                            "flagged by chance" if flagged else "")))
    if power.get("build") and power["build"] != audit.queries.fingerprint:
        out.append(Check("Stress test of this build", WARN, "measured on an earlier build of this audit (other "
                                                              "settings): run it again for this one"))
    return out


def audit_checks(audit: Audit, protocol: str, power: dict[str, Any] | None = None) -> list[Check]:
    """The checks of ``audit`` read under ``protocol``, with the stress test's ``power`` (:func:`power_summary`)."""
    m = audit.membership
    n_m, n_c = len(m.member_rows), len(m.control_rows)
    calibrated = get_protocol(protocol).calibrated
    success = audit.shadows.poison_success
    return [
        Check("Held-out data unseen by the victim", PASS,
              f"no held-out image repeats a private one (checked by content when the data was loaded); {n_c} of them "
              "serve as controls"),
        Check("Calibrated test", PASS if calibrated else WARN,
              f"the {get_protocol(protocol).title} keeps false accusations of innocent models at alpha or below"
              if calibrated else f"the {get_protocol(protocol).title} is not calibrated: use it for comparison only"),
        Check("Samples compared", PASS if min(n_m, n_c) >= MIN_SAMPLES else WARN,
              f"{n_m} training samples (members) and {n_c} unseen samples (controls)"
              + ("" if min(n_m, n_c) >= MIN_SAMPLES else f": below {MIN_SAMPLES} each the test has little power")),
        Check("Poisoned shadow", PASS if success >= MIN_TRIGGER else WARN,
              f"trigger success {success:.0%} (supporting evidence only; the verdict does not rest on it)"),
        *_power(power, audit),
    ]
