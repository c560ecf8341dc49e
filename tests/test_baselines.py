"""forensics.protocols.baselines: the peer methods (fingerprint, AKH, Dataset Inference) in the protocol registry."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from forensics.audit.config import AuditConfig
from forensics.errors import ConfigError
from forensics.protocols.baselines import DI_DIRECTIONS, DI_STEPS, di_distances, mcnemar_greater
from forensics.protocols.registry import get_protocol, list_protocols, protocol_names


def test_baselines_are_registered_but_never_an_audits_verdict():
    every = {p.name for p in list_protocols(baselines=True)}
    assert {"fingerprint", "akh", "dataset_inference"} <= every
    assert not {"fingerprint", "akh", "dataset_inference"} & set(protocol_names())
    for name in ("fingerprint", "akh", "dataset_inference"):
        p = get_protocol(name)
        assert p.baseline and not p.calibrated and not p.needs_logits and p.needs_heldout
    assert get_protocol("dataset_inference").extra_queries is not None
    with pytest.raises(ConfigError, match="protocol"):
        AuditConfig(protocol="fingerprint")


def test_mcnemar_is_the_exact_one_sided_binomial_test():
    rng = np.random.default_rng(0)
    s, r = rng.random(500) < 0.9, rng.random(500) < 0.8
    b, c = int(np.sum(s & ~r)), int(np.sum(~s & r))
    assert mcnemar_greater(s, r) == pytest.approx(st.binomtest(b, b + c, 0.5, alternative="greater").pvalue)
    assert mcnemar_greater(s, s) == 1.0
    assert mcnemar_greater(r, s) > 0.5 > mcnemar_greater(s, r)


def test_di_distances_count_steps_to_the_first_label_change():
    truth = np.array([2, 1])
    labels = np.full((2, DI_DIRECTIONS, DI_STEPS), 0)
    labels[0] = 2                       # sample 0: never leaves class 2 ...
    labels[0, 3, 4:] = 1                # ... except in direction 3 from step 5 on
    labels[1, :, :] = 1
    labels[1, :, 0] = 0                 # sample 1: leaves class 1 at step 1 in every direction
    d = di_distances(labels.reshape(-1), truth)
    assert d.shape == (2, DI_DIRECTIONS)
    assert d[0].tolist() == [5] + [DI_STEPS + 1] * (DI_DIRECTIONS - 1)  # sorted per sample
    assert d[1].tolist() == [1] * DI_DIRECTIONS


@pytest.mark.slow
def test_baselines_run_on_the_same_answers_as_the_protocols(quick_demo):
    audit = quick_demo.audit
    copy = audit.verify(audit.victim, name="copy", baselines=True)
    assert {"membership", "fingerprint", "akh", "dataset_inference"} <= set(copy.evidence)
    fp, akh, di = copy.evidence["fingerprint"], copy.evidence["akh"], copy.evidence["dataset_inference"]
    assert fp["agreement"] == 1.0 and fp["p_value"] < 1e-6 and fp["m"] == len(audit.membership.control_rows)
    assert akh["match_rate"] == 1.0 and akh["p_value"] < 1e-3 and 0 < akh["m"] < fp["m"]  # only the mistakes
    assert di["queries"] == get_protocol("dataset_inference").query_count(di) == len(
        get_protocol("dataset_inference").extra_queries(audit))
    # the most similar innocent reference against itself: no evidence
    ref = audit.verify(audit.shadows.reference, name="reference", baselines=True)
    assert ref.evidence["fingerprint"]["p_value"] > 0.05 and ref.evidence["akh"]["p_value"] > 0.05
    # answers alone (labels): the baselines that need no queries of their own still run
    labels = audit.engine.logits(audit.victim, audit.queries.images).argmax(1)
    v = audit.verify(labels, baselines=True)
    assert "fingerprint" in v.evidence and "dataset_inference" not in v.evidence
    assert v.evidence["fingerprint"]["p_value"] == fp["p_value"]
    # without baselines the verdict is what it always was
    plain = audit.verify(audit.victim, name="copy")
    assert set(plain.evidence) == {"membership", "holmes", "paper", "sequential"} and plain.p_value == copy.p_value
