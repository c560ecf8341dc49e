"""forensics.cli: option handling, records, one-line errors (the demo command runs in test_pipeline)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT

from forensics.cli import build_parser, spec_from_args
from forensics.errors import ForensicsError


def test_cli_record_keeps_overrides_and_rejects_bad_values(tmp_path):
    from forensics.spec import AuditSpec

    rec = tmp_path / "audit.json"
    spec = AuditSpec.demo(3, quick=True)
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
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ForensicsError, match="not a readable audit record"):
        spec_from_args(p.parse_args(["verify", "--record", str(tmp_path / "bad.json"), "--logits", "x"]))


@pytest.mark.slow  # starts Python processes
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "-m", "forensics", "audit", "--victim", str(tmp_path / "missing.safetensors"),
                        "--foundation", "demo:foundation", "--data", str(tmp_path / "nope")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr
