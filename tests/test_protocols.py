"""forensics.protocols and forensics.audit.verify: the protocol registry, readings of a verdict, answers checks."""
from __future__ import annotations

import numpy as np
import pytest

from forensics.audit.verdict import Verdict, format_p
from forensics.audit.verify import check_outputs
from forensics.cli.main import build_parser
from forensics.errors import ConfigError, LogitsFileError
from forensics.protocols.registry import (
    DEFAULT_PROTOCOL,
    VerdictProtocol,
    get_protocol,
    list_protocols,
    register_protocol,
)


def test_registry_declares_needs_and_feeds_the_cli():
    names = [p.name for p in list_protocols()]
    assert names[0] == DEFAULT_PROTOCOL == "membership" and set(names) >= {"membership", "holmes", "paper"}
    membership, holmes = get_protocol("membership"), get_protocol("holmes")
    assert membership.calibrated and not membership.needs_logits and membership.needs_heldout
    assert holmes.needs_logits and not holmes.needs_heldout and not holmes.calibrated
    assert "labels" in holmes.unavailable(has_heldout=True, label_only=True)
    assert "held-out" in membership.unavailable(has_heldout=False, label_only=False)
    assert membership.unavailable(has_heldout=True, label_only=True) is None
    protocol_action = next(a for a in build_parser()._subparsers._group_actions[0].choices["audit"]._actions
                           if a.dest == "protocol")
    assert list(protocol_action.choices) == names
    with pytest.raises(ConfigError, match="unknown protocol"):
        get_protocol("magic")


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ConfigError, match="already registered"):
        register_protocol(VerdictProtocol("membership", "again", "", lambda audit, out, label_only: ({}, {}),
                                   needs_heldout=False, needs_logits=False, calibrated=False))


def _verdict(evidence, protocol="membership", alpha=0.01):
    e = evidence[protocol]
    return Verdict("s", protocol, e["p_value"], None, e["p_value"] < alpha, alpha, 0, 0, evidence)


def test_under_reads_any_protocol_at_any_alpha():
    ev = {"membership": {"p_value": 0.003, "members": 100, "controls": 50},
          "holmes": {"p_value": 0.2, "delta_p": 0.15, "m": 40},
          "paper": {"p_value": 1e-9, "delta_p": -0.1, "m": 100}}
    v = _verdict(ev)
    r = v.under()
    assert (r.protocol, r.p_value, r.m, r.delta_p, r.stolen) == ("membership", 0.003, 150, 0.15, True)
    assert not v.under(alpha=0.001).stolen
    paper = v.under("paper")
    assert paper.delta_p == -0.1 and paper.m == 100 and paper.verdict == "stolen"
    assert v.under("holmes").verdict == "not stolen"
    labels_only = _verdict({"membership": ev["membership"]})
    assert labels_only.under("paper") is None and labels_only.under().delta_p is None
    with pytest.raises(ConfigError, match="unknown protocol 'papr'"):  # a typo is an error, not "could not run"
        v.under("papr")


def test_format_p_is_the_one_formatter():
    assert format_p(None) == "-" and format_p(0.1234) == "0.123" and format_p(2.3456e-7) == "2.3e-07"
    assert format_p(0.001) == "0.001" and format_p(0.00099) == "9.9e-04"


def test_check_outputs():
    logits = np.random.default_rng(0).normal(size=(6, 3))
    assert check_outputs(logits, 6, 3).dtype == np.float64
    assert check_outputs(np.array([[0], [1], [2], [0], [1], [2]]), 6, 3).tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(LogitsFileError, match="shape"):
        check_outputs(logits[:, :2], 6, 3)
    with pytest.raises(LogitsFileError, match=r"integers in \[0, 2\]"):
        check_outputs(np.array([0, 1, 3, 0, 1, 2]), 6, 3)
    bad = logits.copy()
    bad[2, 1] = np.nan
    with pytest.raises(LogitsFileError, match="query 2, class 1"):
        check_outputs(bad, 6, 3)
