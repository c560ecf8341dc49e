"""A suspect's verdict as data: :class:`Verdict` (the chosen protocol's p-value and every protocol's evidence),
:class:`Reading` (a verdict read under one protocol and alpha), and the one way each is put in words:
:func:`format_p`, :func:`headline`, :func:`describe_comparison`."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from ..errors import ConfigError
from ..protocols.registry import get_protocol

#: what a suspect is known to be, where its ground truth is known (the demo's and the zoo's suspects); never an input
#: to a verdict
Kind = Literal["stolen", "innocent"]
KINDS: tuple[str, ...] = get_args(Kind)


def format_p(p: float | None) -> str:
    """The one way a p-value is printed (CLI, dashboard, report): 2 significant digits below 0.001."""
    if p is None:
        return "-"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


@dataclass(frozen=True)
class Reading:
    """A verdict read under one protocol and alpha."""

    protocol: str
    p_value: float
    delta_p: float | None
    m: int                  # samples the test used
    alpha: float

    @property
    def stolen(self) -> bool:
        return self.p_value < self.alpha

    @property
    def verdict(self) -> str:
        return "stolen" if self.stolen else "not stolen"


@dataclass
class Verdict:
    """The result of verifying one suspect: the chosen protocol's p-value and the evidence of every
    protocol that could run."""

    suspect: str
    protocol: str
    p_value: float
    delta_p: float | None
    stolen: bool
    alpha: float
    m: int
    seed: int
    evidence: dict[str, dict[str, Any]]
    fingerprint: str | None = None
    label_only: bool = False
    per_sample: dict[str, list] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        return "stolen" if self.stolen else "not stolen"

    def under(self, protocol: str | None = None, alpha: float | None = None) -> Reading | None:
        """This verdict under ``protocol`` (default: the chosen one) at ``alpha`` (default: the audit's);
        None when that protocol could not run on these answers."""
        return reading_of(self.evidence, protocol or self.protocol, self.alpha if alpha is None else alpha)

    def to_dict(self, per_sample: bool = False) -> dict[str, Any]:
        d = {"suspect": self.suspect, "protocol": self.protocol, "p_value": self.p_value, "delta_p": self.delta_p,
             "verdict": self.verdict, "alpha": self.alpha, "m": self.m, "seed": self.seed,
             "label_only": self.label_only, "fingerprint": self.fingerprint, "evidence": self.evidence}
        if per_sample:
            d["per_sample"] = self.per_sample
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verdict:
        """The verdict a :meth:`to_dict` (an audit record's suspect entry) describes, without recomputing it."""
        try:
            return cls(d["suspect"], d["protocol"], float(d["p_value"]), d.get("delta_p"), d["verdict"] == "stolen",
                       float(d["alpha"]), int(d["m"]), int(d["seed"]), dict(d["evidence"]),
                       fingerprint=d.get("fingerprint"), label_only=bool(d.get("label_only")),
                       per_sample=dict(d.get("per_sample") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"the record's verdict for {d.get('suspect', d.get('name'))!r} is incomplete "
                              f"({type(e).__name__}: {e})") from e


def headline(readings: Sequence[Reading], alpha: float, failed: int = 0) -> str:
    """The audit in one sentence: how many suspects show evidence of derivation at ``alpha``."""
    n, k = len(readings), sum(r.stolen for r in readings)
    if n == 0:
        s = "No suspect has been verified yet"
    elif k == 0:
        s = (f"None of the {n} suspects shows" if n > 1 else "The suspect shows no") + \
            f" evidence of derivation from your model at alpha = {alpha:g}"
    else:
        s = (f"{k} of {n} suspects {'shows' if k == 1 else 'show'}" if n > 1 else "The suspect shows") + \
            f" evidence of derivation from your model at alpha = {alpha:g}"
    if failed:
        s += f"; {failed} could not be verified"
    return s + "."


def describe_comparison(evidence: dict[str, Any], protocol: str = "membership", alpha: float = 0.01) -> str:
    """What a protocol compared and found, in words (for the verdict cards and the report)."""
    if protocol == "membership" and "members" in evidence:
        e = evidence
        what = "errors (it answered with labels only)" if e.get("score") == "error" else "loss"
        finding = ("it fits your training images better than chance allows" if e["p_value"] < alpha
                   else "no difference beyond chance")
        return (f"Compared its {what} on {e['members']} of your private training images and {e['controls']} unseen "
                f"images of the same collection, in {e.get('n_strata', '?')} strata of equal difficulty: {finding} "
                f"(accuracy {e['member_accuracy']:.1%} on your training images vs {e['control_accuracy']:.1%} on "
                f"unseen ones; test statistic z = {float(e.get('z', 0.0)):.1f}).")
    if protocol == "lineage" and "replicas" in evidence:
        e = evidence
        finding = ("closer to your model's than chance allows" if e["p_value"] < alpha else "no closer than chance "
                   "allows")
        return (f"Compared what training changed in {e['weights']:,} of its weights with what it changed in yours: "
                f"correlation {e['corr_victim']:.2f}, against at most {e['corr_replicas_max']:.2f} with "
                f"{e['replicas']} independent re-runs of your training recipe ({finding}; t = {e['t']:.1f}).")
    if protocol == "sequential" and "queries" in evidence:
        e = evidence
        what = "labels" if e.get("score") == "error" else "answers"
        ends = {"evidence": "then the evidence decided: it fits your training images better than chance allows",
                "futility": "then it stopped: the suspect shows too little of your model's own signal to go on"}
        return (f"Asked its {what} on {e['queries']} queries (pairs of one of your private training images and one "
                f"unseen image of the same difficulty, hardest first; {e.get('pairs_available', '?')} pairs "
                f"available); {ends.get(str(e.get('decision')), 'no decision before the budget or the plan ended')} "
                f"(anytime-valid p = {format_p(e['p_value'])}; the audit stops once p falls below alpha, so this "
                "p-value says that the evidence is there, not how strong more queries would make it).")
    if protocol == "combined" and "components" in evidence:
        return describe_combined(evidence, alpha)
    if "m" in evidence:
        return f"Compared its outputs on {evidence['m']} samples (protocol {protocol})."
    return f"Protocol {protocol}."


def describe_combined(evidence: dict[str, Any], alpha: float) -> str:
    """The combined verdict's components in words: each test's p-value, how they combine, and which carried it."""
    ran = evidence["components"]
    parts = " · ".join(f"{name} test p = {format_p(p)}" for name, p in ran.items())
    if len(ran) == 1:
        return f"{parts.capitalize()} (the lineage test needs the suspect's weights in your model's architecture)."
    if evidence["p_value"] < alpha:
        why = f"the evidence comes from the {evidence['carried_by']} test"
    else:
        why = f"neither test reaches alpha / {len(ran)}"
    return f"{parts.capitalize()}. Verdict p = {len(ran)} × the smaller (Bonferroni): {why}."


def reading_of(evidence: dict[str, dict[str, Any]], protocol: str, alpha: float) -> Reading | None:
    """The :class:`Reading` of ``protocol`` in a verdict's ``evidence`` at ``alpha``; None when it did not run."""
    spec = get_protocol(protocol)  # an unknown name is an error, not "could not run"
    e = evidence.get(protocol)
    if e is None:
        return None
    delta_p = evidence.get(spec.delta_p_from or protocol, {}).get("delta_p")
    return Reading(protocol, float(e["p_value"]), delta_p, spec.samples(e), alpha)
