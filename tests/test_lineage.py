"""The lineage test (forensics.method.lineage), the combined verdict, and both on the reduced demo."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from forensics.errors import ConfigError
from forensics.method.lineage import (
    LineageReference,
    changed_tensor_names,
    correlation,
    lineage_pvalues,
    replica_seed,
    trained_change,
)
from forensics.protocols.builtin import combine_evidence
from forensics.protocols.registry import get_protocol


def test_the_t_prediction_is_exact_when_the_transformed_correlations_are_normal():
    """H0 by construction: the victim's and the K replicas' Fisher-z values are i.i.d. (here normal)."""
    rng = np.random.default_rng(0)
    for k in (5, 19):
        z = rng.normal(0.4, 0.05, size=(10_000, k + 1))
        p = np.array([lineage_pvalues(np.tanh(row[0]), np.tanh(row[1:]))["p_value"] for row in z])
        assert np.mean(p < 0.01) <= 0.013, k
        assert np.mean(p < 0.001) <= 0.002, k
        assert 0.48 <= np.mean(p < 0.5) <= 0.52, k  # the bulk is uniform too
        assert np.mean(p < 0.05) >= 0.043  # and not needlessly conservative


def test_pvalues_of_a_copy_and_their_floors():
    e = lineage_pvalues(0.99, np.array([0.30, 0.31, 0.29, 0.32, 0.30, 0.28, 0.31, 0.30, 0.29]))
    assert e["p_value"] < 1e-8 and e["t"] > 50
    assert e["p_rank"] == pytest.approx(0.1)  # exact, but never below 1 / (K + 1)
    assert e["replicas"] == 9 and e["corr_replicas_max"] == pytest.approx(0.32)
    same = lineage_pvalues(0.30, np.array([0.30, 0.31, 0.29, 0.32, 0.30, 0.28, 0.31, 0.30, 0.29]))
    assert 0.3 < same["p_value"] < 0.7 and same["p_rank"] > 0.5
    assert lineage_pvalues(1.0, np.full(5, 0.3) + np.arange(5) * 1e-3)["p_value"] < 1e-10  # atanh(1) clipped
    with pytest.raises(ConfigError, match="at least 5 replicas"):
        lineage_pvalues(0.9, np.array([0.1, 0.2]))
    assert correlation(np.zeros(4), np.arange(4.0)) == 0.0  # a model training never changed
    assert len({replica_seed(0, k) for k in range(50)} | {0}) == 51


def _shifted(model: torch.nn.Module, names: list[str], change: np.ndarray) -> torch.nn.Module:
    """A copy of ``model`` whose tensors ``names`` moved by ``change`` (flattened in that order)."""
    import copy

    out = copy.deepcopy(model)
    state, at = out.state_dict(), 0
    for n in names:
        t = state[n]
        state[n] = t + torch.from_numpy(change[at:at + t.numel()].reshape(t.shape)).to(t.dtype)
        at += t.numel()
    out.load_state_dict(state)
    return out


def test_a_reference_flags_a_descendant_and_clears_independent_runs(tiny_model):
    """Planted changes: every run of the recipe shares a direction (same foundation, same data) plus its own noise;
    a descendant of the victim keeps the victim's own noise."""
    foundation = tiny_model(num_classes=3, seed=0)
    f_state = {n: t.clone() for n, t in foundation.state_dict().items()}
    names = changed_tensor_names(foundation, f_state, 1)
    head = {n for n in f_state if n.startswith("classifier")}
    assert names and not set(names) & head and not any("running_" in n for n in names)
    n = trained_change(foundation, f_state, names).size
    rng = np.random.default_rng(1)
    common = rng.normal(size=n)

    def run() -> np.ndarray:
        return (0.01 * (common + rng.normal(size=n))).astype(np.float32)

    d_v = run()
    ref = LineageReference(names, f_state, d_v, np.stack([run() for _ in range(9)]), list(range(9)))
    victim = _shifted(foundation, names, d_v)
    thief = _shifted(victim, names, (0.01 * rng.normal(size=n)).astype(np.float32))  # the victim, moved further
    innocent = _shifted(foundation, names, run())
    e_thief, e_innocent = ref.test(thief), ref.test(innocent)
    assert e_thief["p_value"] < 1e-6 and e_thief["corr_victim"] > e_thief["corr_replicas_max"]
    assert e_innocent["p_value"] > 0.01 and e_innocent["weights"] == n
    assert ref.test(tiny_model(num_classes=5, seed=0)) is not None  # another head does not matter
    assert ref.test(torch.nn.Linear(3, 3)) is None  # another architecture: the test does not apply


def test_combined_is_bonferroni_over_the_components_that_ran():
    both = combine_evidence({"membership": {"p_value": 0.2, "members": 10, "controls": 12},
                             "lineage": {"p_value": 0.003}, "holmes": {"p_value": 1e-9}})
    assert both["p_value"] == pytest.approx(0.006) and both["carried_by"] == "lineage"
    assert both["components"] == {"membership": 0.2, "lineage": 0.003} and both["samples"] == 22
    alone = combine_evidence({"membership": {"p_value": 0.004, "members": 1, "controls": 1}})
    assert alone["p_value"] == pytest.approx(0.004) and alone["components"] == {"membership": 0.004}
    assert combine_evidence({"membership": {"p_value": 0.7, "members": 1, "controls": 1},
                             "lineage": {"p_value": 0.6}})["p_value"] == 1.0
    with pytest.raises(ConfigError, match="nothing to combine"):
        combine_evidence({"holmes": {"p_value": 0.1}})
    # the lineage test asks the suspect nothing: its replicas are not queries (the bench's query counts)
    assert get_protocol("lineage").query_count({"p_value": 0.003, "replicas": 19}) == 0
    assert get_protocol("combined").query_count(both) == 22


@pytest.mark.slow
def test_lineage_and_combined_verdicts_on_the_reduced_demo(quick_demo):
    """Five replicas of the reduced victim: a fine-tuned copy is flagged by both tests, the innocent by neither;
    answers alone get the membership test alone, and a verdict by ``lineage`` needs a model."""
    audit = quick_demo.audit
    config = replace(audit.config, lineage_replicas=5, protocol="combined")
    lineage_audit = replace(audit, spec=replace(audit.spec, config=config), memo={})
    stolen = lineage_audit.verify("demo:fine_tune")
    innocent = lineage_audit.verify("demo:innocent")
    assert stolen.protocol == "combined" and stolen.stolen and not innocent.stolen
    for v in (stolen, innocent):
        assert set(v.evidence["combined"]["components"]) == {"membership", "lineage"}
        assert v.p_value == pytest.approx(min(1.0, 2 * min(v.evidence["membership"]["p_value"],
                                                           v.evidence["lineage"]["p_value"])))
    assert stolen.evidence["lineage"]["p_value"] < 1e-4 and stolen.evidence["lineage"]["replicas"] == 5
    assert innocent.evidence["lineage"]["p_value"] > 0.01
    ref = lineage_audit.memo["lineage"]
    assert ref.replica_seeds == [replica_seed(audit.config.seed, k) for k in range(5)]
    answers = lineage_audit.verify(audit.engine.logits(audit.load_suspect("demo:fine_tune"), audit.queries.images))
    assert "lineage" not in answers.evidence
    assert answers.evidence["combined"]["components"].keys() == {"membership"}
    assert answers.p_value == answers.evidence["membership"]["p_value"]
    with pytest.raises(ConfigError, match="needs the suspect's weights"):
        lineage_audit.verify(np.zeros(len(audit.queries), int), protocol="lineage")
