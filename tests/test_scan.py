"""forensics.cases.scan and `holmes-forensics scan`: many suspects, a JSON line each, failures kept, resumable."""
from __future__ import annotations

import json

import numpy as np
import pytest

from forensics.cases.scan import read_suspect_list
from forensics.cli.main import main
from forensics.errors import ConfigError
from forensics.report.record import build_report

pytestmark = pytest.mark.slow


def test_a_scan_streams_survives_failures_and_resumes(quick_demo, store_root, tmp_path, capsys):
    audit = quick_demo.audit
    record = tmp_path / "audit.json"
    record.write_text(json.dumps(build_report(audit, [])))
    answers = tmp_path / "api.npy"
    np.save(answers, audit.engine.logits(audit.victim, audit.queries.images))
    suspects = tmp_path / "suspects.txt"
    suspects.write_text("# the demo's suspects, copies under other names, and two that cannot load\n"
                        f"demo:direct_copy\ndemo:innocent\n{answers}\nlocal-dir:{tmp_path / 'nowhere'}\n"
                        f"{tmp_path / 'broken.safetensors'}\n\ndemo:direct_copy\n")
    (tmp_path / "broken.safetensors").write_bytes(b"not weights")
    out = tmp_path / "scan.jsonl"
    rc = main(["scan", "--record", str(record), "--suspects", str(suspects), "--out", str(out),
               "--store", str(store_root), "--quiet"])
    assert rc == 2  # two failed
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["verified", "verified", "verified", "failed", "failed"]
    p = {r["suspect"]: r["p_value"] for r in rows}
    assert p["demo:direct_copy"] == audit.verify("demo:direct_copy").p_value < 0.01
    assert p["demo:innocent"] == audit.verify("demo:innocent").p_value > 0.01
    assert p[str(answers)] < 0.01  # the victim's own answers
    assert "no such folder" in rows[3]["error"] and rows[4]["error"]
    printed = capsys.readouterr().out
    assert "[1/5] verified" in printed and "3 verified, 0 reused" in printed
    # a second run recomputes nothing that was verified, and tries the failed ones again
    main(["scan", "--record", str(record), "--suspects", str(suspects), "--out", str(out), "--store", str(store_root),
          "--quiet"])
    assert "0 verified, 3 reused" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 7  # the two failures again, nothing else appended


def test_the_suspect_list_is_checked(tmp_path):
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="lists no suspects"):
        read_suspect_list(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="cannot read the suspect list"):
        read_suspect_list(tmp_path / "missing.txt")


def test_a_bare_weights_file_is_queried_as_the_victim_is(quick_demo, tmp_path):
    """A weights file has no preprocessing of its own: the reduced demo's victim runs at 64 px, timm's default for
    its architecture is 224 px.  Queried at 224 px a re-uploaded copy went unnoticed (measured: p = 0.39)."""
    from safetensors.torch import save_file

    audit = quick_demo.audit
    copy = tmp_path / "upload.safetensors"
    save_file({k: v.half().float().contiguous() for k, v in audit.victim.model.state_dict().items()}, str(copy))
    assert audit.load_suspect(str(copy)).data_config == audit.victim.data_config
    assert audit.verify(str(copy)).p_value < 1e-6
