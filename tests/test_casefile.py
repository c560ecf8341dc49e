"""forensics.cases.casefile: cases kept in the store, listed, and read back (the reopening itself runs in test_app)."""
from __future__ import annotations

import json

import pytest

from forensics.cases import casefile
from forensics.cases.case import Case, Suspect
from forensics.errors import ConfigError
from forensics.report.record import read_record
from forensics.runtime.store import ArtifactStore


def test_a_case_that_has_not_run_is_saved_listed_and_read_back(tmp_path):
    store = ArtifactStore(tmp_path)
    case = Case.demo(0, quick=True)
    case.info = {"case_name": "Acme v2 vs listing 4411", "auditor": "R. Holmes"}
    case.add_suspect(Suspect("api", "answers:api.csv", answers="/store/uploads/ab.csv", upload="api.csv"))
    path = casefile.save_case(store, case)
    assert path == tmp_path / "cases" / f"{case.id}.json"
    [summary] = casefile.recent_cases(store)
    assert (summary.id, summary.title, summary.suspects, summary.status) == \
        (case.id, "Acme v2 vs listing 4411", 7, "set up, not run")
    back = casefile.case_from_record(casefile.load_record(store, case.id))
    assert back.id == case.id and back.info == case.info and back.spec == case.spec
    assert [s.to_dict() for s in back.suspects] == [s.to_dict() for s in case.suspects]
    assert back.suspects[-1].shown_source == "uploaded api.csv" and not casefile.has_verdicts(
        casefile.load_record(store, case.id))


def test_bad_ids_damaged_and_foreign_records_are_clear_errors(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ConfigError, match="not an audit id"):
        casefile.load_record(store, "../../etc/passwd")
    with pytest.raises(ConfigError, match="no audit 0123456789ab in the artifact store"):
        casefile.load_record(store, "0123456789ab")
    with pytest.raises(ConfigError, match=r"notes\.json is not a Holmes forensics audit record"):
        read_record(b'{"hello": 1}', "notes.json")
    with pytest.raises(ConfigError, match=r"x\.json is not JSON"):
        read_record(b"\x00garbage", "x.json")
    rec = casefile.case_record(Case.demo(0, quick=True))
    rec["pending"] = [{"name": "no source"}]
    with pytest.raises(ConfigError, match="no name or source"):
        casefile.case_from_record(rec)
    rec["pending"] = ["not a suspect"]
    with pytest.raises(ConfigError, match="no name or source"):
        casefile.case_from_record(rec)
    # an unreadable file in the store is skipped by the list, not an error
    (tmp_path / "cases").mkdir(exist_ok=True)
    (tmp_path / "cases" / "0123456789ab.json").write_text("{broken")
    assert casefile.recent_cases(store) == []
    with pytest.raises(ConfigError, match="not JSON"):
        casefile.load_record(store, "0123456789ab")
    assert json.loads(json.dumps(rec))  # the record is plain JSON
