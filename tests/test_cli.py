"""forensics.cli: option handling, records, one-line errors (the demo command runs in test_pipeline)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from forensics.cli.common import spec_from_args
from forensics.cli.main import build_parser
from forensics.demo import demo_spec
from forensics.errors import ForensicsError


def test_cli_record_keeps_overrides_and_rejects_bad_values(tmp_path):

    rec = tmp_path / "audit.json"
    spec = demo_spec(3, quick=True)
    spec.device = "cuda"
    rec.write_text(json.dumps({"spec": spec.to_dict(), "suspects": []}))
    p = build_parser()
    s = spec_from_args(p.parse_args(["verify", "--record", str(rec), "--device", "cpu", "--alpha", "0.05",
                                     "--logits", "x.npy"]))
    assert s.device == "cpu" and s.config.alpha == 0.05 and s.config.seed == 3 and s.quick
    s = spec_from_args(p.parse_args(["audit", "--victim", "v.safetensors", "--foundation", "f", "--data", "d",
                                     "--trainable-blocks", "all", "--lr", "0.01"]))
    assert s.config.train.trainable_blocks is None and s.config.poison_train.trainable_blocks is None
    assert s.config.poison_train.lr == 0.01
    with pytest.raises(ForensicsError, match="trainable-blocks"):
        spec_from_args(p.parse_args(["audit", "--victim", "v", "--foundation", "f", "--data", "d",
                                     "--trainable-blocks", "abc"]))
    with pytest.raises(ForensicsError, match="--arch needs --victim"):
        spec_from_args(p.parse_args(["audit", "--arch", "resnet18"]))
    # the lineage test: replicas, and the combined verdict unless another protocol is asked for
    s = spec_from_args(p.parse_args(["audit", "--lineage-replicas", "9"]))
    assert s.config.lineage_replicas == 9 and s.config.protocol == "combined"
    s = spec_from_args(p.parse_args(["audit", "--lineage-replicas", "9", "--protocol", "membership"]))
    assert s.config.lineage_replicas == 9 and s.config.protocol == "membership"
    s = spec_from_args(p.parse_args(["verify", "--record", str(rec), "--lineage-replicas", "7", "--logits", "x"]))
    assert s.config.lineage_replicas == 7 and s.config.seed == 3
    with pytest.raises(ForensicsError, match="needs replicas of the victim's training run"):
        spec_from_args(p.parse_args(["audit", "--protocol", "combined"]))
    with pytest.raises(ForensicsError, match=r"lineage_replicas.*must be 0 \(no lineage test\) or in \[5, 200\]"):
        spec_from_args(p.parse_args(["audit", "--lineage-replicas", "2"]))
    # all of D as members: reference pairs, on their own or with the lineage test
    s = spec_from_args(p.parse_args(["audit", "--reference-pairs", "4"]))
    assert s.config.reference_pairs == 4 and s.config.protocol == "membership"
    assert spec_from_args(p.parse_args(["audit"])).config.reference_pairs == 0
    with pytest.raises(ForensicsError, match=r"reference_pairs.*must be 0 \(one reference shadow\) or in \[1, 16\]"):
        spec_from_args(p.parse_args(["audit", "--reference-pairs", "40"]))
    bench = p.parse_args(["bench", "--reference-pairs", "2", "--small"])
    assert bench.reference_pairs == 2
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ForensicsError, match=r"bad\.json is not JSON"):
        spec_from_args(p.parse_args(["verify", "--record", str(tmp_path / "bad.json"), "--logits", "x"]))


@pytest.mark.slow  # starts Python processes
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "forensics", "audit", "--victim", str(tmp_path / "missing.safetensors"),
                        "--foundation", "demo:foundation", "--data", str(tmp_path / "nope")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forensics", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow  # the reduced demo, and Python processes
def test_export_verify_audit_reverify_round_trip(quick_demo, store_root, tmp_path):
    """The black-box flow end to end: export the query set, answer it, verify the answers; then an audit
    record of a model suspect and the answers reproduces its p-values with reverify."""
    import numpy as np


    store = ["--store", str(store_root), "--quiet"]
    rec = tmp_path / "spec.json"
    rec.write_text(json.dumps({"spec": demo_spec(0, quick=True).to_dict(), "suspects": []}))
    r = _cli("export-queries", "--record", str(rec), "--out", str(tmp_path / "q"), *store)
    assert r.returncode == 0, r.stderr
    a = quick_demo.audit
    assert len((tmp_path / "q" / "queries.csv").read_text().splitlines()) == len(a.queries) + 1
    answers = tmp_path / "answers.npy"
    np.save(answers, a.engine.logits(a.victim, a.queries.images))  # a perfect copy behind an API
    out = tmp_path / "verify.json"
    r = _cli("verify", "--record", str(tmp_path / "q" / "audit.json"), "--logits", str(answers),
             "--suspect", "demo:innocent", "--json", str(out), *store)
    assert r.returncode == 0, r.stderr
    rows = {s["name"]: s for s in json.loads(out.read_text())["suspects"]}
    assert rows["answers.npy"]["verdict"] == "stolen" and rows["demo:innocent"]["verdict"] == "not stolen"
    assert rows["demo:innocent"]["kind"] == "innocent"
    r = _cli("reverify", str(out), *store)
    assert r.returncode == 0 and "all p-values reproduced" in r.stdout, r.stdout + r.stderr
    # a record's seed cannot be changed from the command line
    r = _cli("verify", "--record", str(out), "--seed", "3", "--logits", str(answers), *store)
    assert r.returncode == 2 and "--seed 3" in r.stderr


@pytest.mark.slow  # the reduced demo
def test_export_queries_with_a_budget_keeps_the_test_valid(quick_demo, store_root, tmp_path, capsys):
    """--budget N: at most N queries (members and controls only); the record carries the budget, so answers to
    the small query set verify against it, and the Holmes protocols (which need D_s) say they cannot run."""

    from forensics.audit.build import open_audit
    from forensics.audit.config import AuditConfig
    from forensics.cli.common import spec_and_record
    from forensics.cli.main import main
    from forensics.runtime.store import ArtifactStore

    rec = tmp_path / "spec.json"
    rec.write_text(json.dumps({"spec": demo_spec(0, quick=True).to_dict(), "suspects": []}))
    assert main(["export-queries", "--record", str(rec), "--out", str(tmp_path / "q"), "--budget", "200",
                 "--store", str(store_root), "--quiet"]) == 0
    assert "wrote 200 query images" in capsys.readouterr().out
    assert len((tmp_path / "q" / "queries.csv").read_text().splitlines()) == 201
    spec = spec_and_record(tmp_path / "q" / "audit.json")[0]
    assert spec.config.query_budget == 200
    small = open_audit(spec, ArtifactStore(store_root))
    assert len(small.queries) == 200 and len(small.membership.member_rows) == 100
    full = quick_demo.audit
    assert small.shadows.reference.fingerprint == full.shadows.reference.fingerprint  # nothing retrained
    copy = small.verify(small.engine.logits(small.victim, small.queries.images))
    assert copy.p_value < 1e-6 and set(copy.evidence) == {"membership", "sequential"}
    innocent = small.verify(small.engine.logits(full.shadows.reference, small.queries.images))
    assert innocent.p_value > 0.01
    with pytest.raises(ForensicsError, match="D_s"):
        AuditConfig(query_budget=200, protocol="holmes")
    with pytest.raises(ForensicsError, match="query_budget"):
        AuditConfig(query_budget=10)
