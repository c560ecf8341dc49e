"""Stage 3: verifying a suspect, from a model (white-box) or its answers on the query set (black-box).

Every registered protocol that can run on the answers (:mod:`.protocols`) adds its evidence; the
audit's chosen protocol decides the :class:`Verdict`, and :meth:`Verdict.under` reads it under any
other protocol or alpha, so no caller re-derives p-values, dP or sample counts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .baselines import extra_answers
from .errors import ClassCountMismatchError, ConfigError, LogitsFileError
from .models import LoadedModel
from .protocols import get_protocol, list_protocols

if TYPE_CHECKING:
    from .audit import Audit


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
        return _reading(self.evidence, protocol or self.protocol, self.alpha if alpha is None else alpha)

    def to_dict(self, per_sample: bool = False) -> dict[str, Any]:
        d = {"suspect": self.suspect, "protocol": self.protocol, "p_value": self.p_value, "delta_p": self.delta_p,
             "verdict": self.verdict, "alpha": self.alpha, "m": self.m, "seed": self.seed,
             "label_only": self.label_only, "fingerprint": self.fingerprint, "evidence": self.evidence}
        if per_sample:
            d["per_sample"] = self.per_sample
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        """The verdict a :meth:`to_dict` (an audit record's suspect entry) describes, without recomputing it."""
        try:
            return cls(d["suspect"], d["protocol"], float(d["p_value"]), d.get("delta_p"), d["verdict"] == "stolen",
                       float(d["alpha"]), int(d["m"]), int(d["seed"]), dict(d["evidence"]),
                       fingerprint=d.get("fingerprint"), label_only=bool(d.get("label_only")),
                       per_sample=dict(d.get("per_sample") or {}))
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"the record's verdict for {d.get('suspect', d.get('name'))!r} is incomplete "
                              f"({type(e).__name__}: {e})") from e


def headline(readings: "Sequence[Reading]", alpha: float, failed: int = 0) -> str:
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
    if "m" in evidence:
        return f"Compared its outputs on {evidence['m']} samples (protocol {protocol})."
    return f"Protocol {protocol}."


def _reading(evidence: dict[str, dict[str, Any]], protocol: str, alpha: float) -> Reading | None:
    spec = get_protocol(protocol)  # an unknown name is an error, not "could not run"
    e = evidence.get(protocol)
    if e is None:
        return None
    delta_p = evidence.get(spec.delta_p_from or protocol, {}).get("delta_p")
    return Reading(protocol, float(e["p_value"]), delta_p, spec.samples(e), alpha)


def check_outputs(outputs: np.ndarray, n: int, k: int) -> np.ndarray:
    """Answers to ``n`` queries: logits (n, k) as float64, or labels (n,) as int64; clear errors otherwise."""
    out = np.asarray(outputs)
    if out.ndim == 2 and out.shape == (n, 1):
        out = out[:, 0]
    if out.ndim == 1:
        if out.shape[0] != n:
            raise LogitsFileError(f"got {out.shape[0]} labels for {n} queries; answer every query, in the order of "
                                  "queries.csv")
        as_float = out.astype(np.float64)
        whole = np.all(np.isfinite(as_float)) and not np.any(as_float != np.round(as_float))
        if not whole or out.min() < 0 or out.max() >= k:
            raise LogitsFileError(f"labels must be integers in [0, {k - 1}]")
        return out.astype(np.int64)
    if out.ndim != 2 or out.shape != (n, k):
        raise LogitsFileError(f"expected logits of shape ({n}, {k}) (one row per query, one column per class) "
                              f"or {n} labels; got shape {out.shape}")
    out = out.astype(np.float64)
    if not np.all(np.isfinite(out)):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise LogitsFileError(f"the logits contain NaN or infinite values (first at query {bad[0]}, class {bad[1]}); "
                              "re-export them")
    return out


def has_ds(audit: "Audit") -> bool:
    """Whether D_s is among the audit's queries (a query budget leaves it out)."""
    ds_rows = audit.loss_order.ds_rows
    return len(ds_rows) > 0 and audit.queries.has_rows(0, ds_rows)


def verify_outputs(audit: "Audit", outputs: np.ndarray, name: str, protocol: str | None = None, *,
                   baselines: bool = False, extra: dict[str, np.ndarray] | None = None) -> Verdict:
    """Verify a suspect from its outputs on ``audit.queries``: logits (N, K) or labels (N,).

    With ``baselines``, the peer baselines (:mod:`forensics.baselines`) add their evidence too; one that needs
    queries of its own runs only when ``extra`` holds the suspect's answers to them (by protocol name)."""
    cfg = audit.config
    protocol = protocol or cfg.protocol
    chosen = get_protocol(protocol)
    out = check_outputs(outputs, len(audit.queries), audit.num_classes)
    label_only = out.ndim == 1
    has_heldout, ds = audit.heldout is not None, has_ds(audit)
    why = chosen.unavailable(has_heldout=has_heldout, label_only=label_only, has_ds=ds)
    if why:
        raise ConfigError(f"protocol {protocol!r} cannot run here: {why}")
    evidence: dict[str, dict[str, Any]] = {}
    per_sample: dict[str, list] = {}
    extra = extra or {}
    for p in list_protocols(baselines=baselines):
        if p.unavailable(has_heldout=has_heldout, label_only=label_only, has_ds=ds) is not None:
            continue
        if p.extra_queries is not None and p.name not in extra:
            continue
        more = None
        if p.extra_queries is not None:
            more = check_outputs(extra[p.name], len(p.extra_queries(audit)), audit.num_classes)
            if more.ndim == 1 and not label_only:
                raise LogitsFileError(f"answers to the {p.name!r} queries are labels but the query set's are logits")
        evidence[p.name], samples = p.run(audit, out, label_only, more)
        per_sample.update(samples)
    r = _reading(evidence, protocol, cfg.alpha)
    if r is None:  # cannot happen: the chosen protocol was available
        raise ConfigError(f"protocol {protocol!r} produced no evidence")
    return Verdict(name, protocol, r.p_value, r.delta_p, r.stolen, cfg.alpha, r.m, cfg.seed, evidence,
                   label_only=label_only, per_sample=per_sample)


def query_outputs(audit: "Audit", suspect: LoadedModel) -> np.ndarray:
    """A model suspect's logits on the query set (white-box / local evaluation)."""
    if suspect.num_classes != audit.num_classes:
        raise ClassCountMismatchError(
            f"suspect {suspect.source} has {suspect.num_classes} classes, the victim {audit.num_classes}; a "
            "suspect must classify the victim's classes", expected=audit.num_classes, found=suspect.num_classes)
    return audit.engine.logits(suspect, audit.queries.images)


def verify_model(audit: "Audit", suspect: LoadedModel, name: str | None = None, protocol: str | None = None,
                 *, baselines: bool = False) -> Verdict:
    extra = extra_answers(audit, suspect, list_protocols(baselines=True)) if baselines else None
    v = verify_outputs(audit, query_outputs(audit, suspect), name or suspect.source, protocol=protocol,
                       baselines=baselines, extra=extra)
    v.fingerprint = suspect.fingerprint
    return v
