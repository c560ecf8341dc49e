"""End-to-end behaviour of the pipeline on the reduced demo (real EfficientNet-Lite0, real data)."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from forensics.audit import AuditConfig, select_ds, verify_outputs
from forensics.data import Trigger, iter_batches
from forensics.demo import demo_data, run_demo
from forensics.engine import TrainConfig
from forensics.errors import ConfigError, DatasetTooSmallError
from forensics.io import export_queries, read_outputs
from forensics.models import load_demo_foundation
from forensics.spec import AuditSpec, load_suspect, open_audit
from forensics.store import ArtifactStore

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def quick_demo(store_root):
    return run_demo(0, store=ArtifactStore(store_root), quick=True)


def test_quick_demo_verdicts(quick_demo):
    res = {s.key: (kind, v) for s, kind, v, _ in quick_demo.suspects}
    assert quick_demo.victim_test_accuracy > 0.75
    # weight-derived thefts are caught even in the reduced demo ...
    assert res["direct_copy"][1].p_value < 1e-6 and res["direct_copy"][1].verdict == "stolen"
    assert res["fine_tune"][1].p_value < 0.01
    # ... and the innocent models are not accused
    for key in ("innocent", "innocent_long"):
        assert res[key][0] == "innocent"
        assert res[key][1].p_value > 0.05 and res[key][1].verdict == "not stolen"
    for _, v in res.values():
        assert set(v.evidence) == {"membership", "holmes", "paper"}
        assert v.protocol == "membership" and v.alpha == 0.01 and v.seed == 0
        assert 0.0 <= v.p_value <= 1.0


def test_second_run_recomputes_nothing_and_is_bit_identical(quick_demo, store_root):
    store = ArtifactStore(store_root)
    again = run_demo(0, store=store, quick=True)
    assert store.stats.computed == []
    assert again.audit.victim.fingerprint == quick_demo.audit.victim.fingerprint
    assert [v.p_value for _, _, v, _ in again.suspects] == [v.p_value for _, _, v, _ in quick_demo.suspects]


def test_changed_input_recomputes_only_what_depends_on_it(quick_demo, store_root):
    store = ArtifactStore(store_root)
    spec = AuditSpec.demo(0, quick=True)
    spec.config = replace(spec.config, gamma=0.15)
    session = open_audit(spec, store)
    # the victim and its loss order are reused; D_s changed, so the poisoned shadow is new
    assert "demo_victim" in store.stats.hits and "loss_order" in store.stats.hits
    assert "poisoned_shadow" in store.stats.computed and "meta_classifier" in store.stats.computed
    # the benign shadow does not depend on gamma
    assert "benign_shadow" in store.stats.hits
    assert len(session.audit.ds_rows) == round(0.15 * len(session.audit.private))


def test_loss_order_batched_equals_one_by_one(quick_demo):
    a = quick_demo.audit
    sub = a.private.subset(np.arange(20))
    model = a.victim.model.eval()
    losses = []
    with torch.no_grad():
        for x, i in iter_batches(sub, a.victim.data_config, batch_size=1):
            losses.append(torch.nn.functional.cross_entropy(model(x), torch.from_numpy(sub.labels[i.numpy()])).item())
    # the batched, prefix-cached loss order equals a plain batch-size-1 loop through the whole model
    np.testing.assert_allclose(a.victim_loss[:20], np.array(losses), rtol=1e-4, atol=1e-5)


def test_ds_is_lowest_loss_and_skips_target_class():
    loss = np.array([0.1, 0.05, 0.3, 0.01, 0.2, 0.02, 0.5, 0.4, 0.6, 0.7])
    labels = np.array([1, 0, 1, 0, 2, 1, 2, 1, 2, 1])
    rows = select_ds(loss, labels, 0.3, target_class=0)
    assert rows.tolist() == [5, 0, 4]


def test_poisoned_shadow_learned_the_trigger(quick_demo):
    a = quick_demo.audit
    assert a.poison_success > 0.5
    assert (a.private.labels[a.ds_rows] != a.config.target_class).all()


def test_trigger_is_stamped_after_resizing():
    data = demo_data(quick=True)["private"].subset([0, 1])
    cfg = load_demo_foundation(10, input_size=64).data_config
    trig = Trigger(size=0.125, value=1.0)
    x, _ = next(iter_batches(data, cfg, trigger=trig))
    clean, _ = next(iter_batches(data, cfg))
    s = 8  # 0.125 * 64
    assert torch.all(x[:, :, -s:, -s:] == 1.0)  # white after normalisation with mean = std = 0.5
    assert torch.equal(x[:, :, :-s, :], clean[:, :, :-s, :])


def test_black_box_logits_file_gives_the_same_verdict(quick_demo, tmp_path):
    session = quick_demo.session
    a = session.audit
    csv = export_queries(a.queries.subset(np.arange(5)), tmp_path / "q")
    assert csv.read_text().splitlines()[0] == "query_index,file"
    assert (tmp_path / "q" / "images" / "q000004.png").is_file()
    model = load_suspect(session, "demo:fine_tune")
    logits = session.engine.logits(model, a.queries)
    order = np.random.default_rng(1).permutation(len(logits))
    import pandas as pd
    df = pd.DataFrame(logits[order], columns=[f"c{i}" for i in range(10)])
    df.insert(0, "query_index", order)
    df.to_csv(tmp_path / "answers.csv", index=False)
    out = read_outputs(tmp_path / "answers.csv", len(a.queries), 10)
    v_file = verify_outputs(a, out, "file")
    v_model = [v for s, _, v, _ in quick_demo.suspects if s.key == "fine_tune"][0]
    assert v_file.p_value == pytest.approx(v_model.p_value, rel=1e-6)
    # label-only answers: the membership test runs on correctness, the logit-based evidence is absent
    v_lab = verify_outputs(a, logits.argmax(1), "labels")
    assert v_lab.label_only and set(v_lab.evidence) == {"membership"}
    assert v_lab.evidence["membership"]["score"] == "error"
    with pytest.raises(ConfigError):
        verify_outputs(a, logits.argmax(1), "labels", protocol="paper")


def test_dataset_too_small_for_gamma(tmp_path):
    spec = AuditSpec.demo(0, quick=True)
    spec.config = replace(spec.config, gamma=0.04)  # 0.04 * 600 = 24 < 30
    with pytest.raises(DatasetTooSmallError, match="at least"):
        open_audit(spec, ArtifactStore(tmp_path))


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="'gamma' parameter of AuditConfig must be in"):
        AuditConfig(gamma=1.5)
    with pytest.raises(ConfigError, match="'epochs' parameter of TrainConfig"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="protocol"):
        AuditConfig(protocol="magic")


def test_cli_demo_writes_json(quick_demo, store_root, tmp_path):
    out = tmp_path / "demo.json"
    r = subprocess.run([sys.executable, "-m", "forensics", "demo", "--quick", "--quiet", "--store", str(store_root),
                        "--json", str(out)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert set(d["victim"]) >= {"test_accuracy"}
    assert [s["name"] for s in d["suspects"]][:2] == ["direct copy", "fine-tuned copy"]
    assert {"name", "kind", "p_value", "delta_p", "verdict"} <= set(d["suspects"][0])
    assert d["suspects"][0]["p_value"] == pytest.approx(quick_demo.suspects[0][2].p_value)
    assert "direct copy" in r.stdout and "stolen" in r.stdout


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "forensics", "audit", "--victim", str(tmp_path / "missing.safetensors"),
                        "--foundation", "demo:foundation", "--data", str(tmp_path / "nope")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def test_answers_for_another_query_set_are_refused(quick_demo, store_root, tmp_path):
    from forensics.workspace import SuspectEntry, Workspace, run_workspace, store_answers

    a = quick_demo.audit
    logits = quick_demo.session.engine.logits(a.victim, a.queries)
    np.save(tmp_path / "answers.npy", logits)
    store = ArtifactStore(store_root)
    path = store_answers(store, (tmp_path / "answers.npy").read_bytes(), "answers.npy")
    ws = Workspace(spec=AuditSpec.demo(0, quick=True), suspects=[
        SuspectEntry("right", "answers:answers.npy", answers=path, query_set=a.queries.fingerprint),
        SuspectEntry("stale", "answers:answers.npy", answers=path, query_set="0" * 64)])
    run_workspace(ws, store)
    assert ws.verdicts["right"].p_value < 1e-6
    assert "another query set" in ws.errors["stale"] and "stale" not in ws.verdicts
