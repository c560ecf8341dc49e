"""forensics.cases.case: a case's suspects, answers kept in the store, the demo case."""
from __future__ import annotations

import pytest

from forensics.cases.case import Case, Suspect
from forensics.cases.uploads import store_answers
from forensics.demo import is_demo
from forensics.errors import ConfigError, LogitsFileError
from forensics.runtime.store import ArtifactStore


def test_demo_case_lists_its_suspects_with_their_ground_truth():
    case = Case.demo(0, quick=True)
    assert is_demo(case.spec.victim) and case.spec.quick and case.audit is None
    assert [s.source for s in case.suspects][:2] == ["demo:direct_copy", "demo:fine_tune"]
    assert {s.kind for s in case.suspects} == {"stolen", "innocent"}


def test_suspects_have_unique_names_and_removal_forgets_their_results():
    case = Case()
    case.add_suspect(Suspect("a", "hf-hub:org/a"))
    with pytest.raises(ConfigError, match="already in the list"):
        case.add_suspect(Suspect("a", "hf-hub:org/other"))
    case.verdicts["a"], case.cards["a"] = object(), {}
    case.remove_suspect("a")
    assert case.suspects == [] and "a" not in case.verdicts and "a" not in case.cards
    with pytest.raises(ConfigError, match="no victim loaded"):
        case.run(ArtifactStore.__new__(ArtifactStore))
    with pytest.raises(ConfigError, match="once the audit has run"):
        case.queries_zip()


def test_answers_are_stored_by_content(tmp_path):
    store = ArtifactStore(tmp_path)
    p1 = store_answers(store, b"query_index,label\n0,1\n", "api.csv")
    p2 = store_answers(store, b"query_index,label\n0,1\n", "renamed.CSV")
    assert p1.endswith(".csv") and p2.endswith(".csv") and p1 == p2
    assert store_answers(store, b"other", "x.npy") != p1
    with pytest.raises(LogitsFileError, match=r"\.csv or \.npy"):
        store_answers(store, b"x", "answers.txt")
