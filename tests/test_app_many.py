"""Many suspects at once on 1 · Load (a text box or a .txt list), and the build's progress view with many
suspects: the list parser, the default names, the page through AppTest, the compact progress view.  No
training: the demo is loaded but not built, the progress view is fed by a scripted job."""
from __future__ import annotations

import html
import io
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import shown
from streamlit.testing.v1 import AppTest

from dashboard.suspects import default_name, read_list
from forensics.cases.scan import parse_suspect_lines, read_suspect_list
from forensics.errors import ConfigError

# AppTest runs app.py on every rerun, as the server does (conftest.navigation_like_the_server)
pytestmark = pytest.mark.usefixtures("navigation_like_the_server")

APP = str(Path(__file__).resolve().parent.parent / "app.py")


# --- the list's rules (one place: the CLI's scan and the dashboard read lists with them) ---------------------------

def test_parse_suspect_lines_skips_blanks_and_comments_and_keeps_duplicates_once():
    text = ("# thefts we suspect\n\n  hf-hub:org/a  \nhf-hub:org/b@v2   # the second release\n"
            "hf-hub:org/a\n\t\n/models/c.safetensors\t# tab, then a comment\n/answers/api.csv\n#hf-hub:org/off\n")
    assert parse_suspect_lines(text) == ["hf-hub:org/a", "hf-hub:org/b@v2", "/models/c.safetensors",
                                         "/answers/api.csv"]
    # a '#' inside a source (no space before it) is part of it
    assert parse_suspect_lines("local-dir:/m/run#3\n") == ["local-dir:/m/run#3"]
    with pytest.raises(ConfigError, match="the text box lists no suspects; put one source per line"):
        parse_suspect_lines("# only a comment\n\n   \n", "the text box")


def test_read_suspect_list_uses_the_same_rules(tmp_path):
    f = tmp_path / "suspects.txt"
    f.write_text("# a\nhf-hub:org/a\nhf-hub:org/a\n\nlocal-dir:/x # note\n")
    assert read_suspect_list(f) == ["hf-hub:org/a", "local-dir:/x"]
    f.write_text("\n# none\n")
    with pytest.raises(ConfigError, match=r"suspects\.txt lists no suspects"):
        read_suspect_list(f)


def test_read_list_joins_the_box_and_an_uploaded_file():
    assert read_list("hf-hub:o/a\nhf-hub:o/b", ("more.txt", b"\xef\xbb\xbfhf-hub:o/b\nhf-hub:o/c\n")) == \
        ["hf-hub:o/a", "hf-hub:o/b", "hf-hub:o/c"]
    with pytest.raises(ConfigError, match=r"type one suspect source per line, or upload a \.txt list"):
        read_list("  \n")
    with pytest.raises(ConfigError, match=r"'list\.txt' is not a text file"):
        read_list("", ("list.txt", b"\xff\xfe\x00\x81"))
    with pytest.raises(ConfigError, match=r"'weights\.safetensors': upload the list as a \.txt file"):
        read_list("", ("weights.safetensors", b"x"))
    with pytest.raises(ConfigError, match=r"the text box and empty\.txt lists no suspects"):
        read_list("# nothing", ("empty.txt", b"\n"))


def test_default_names_are_short_and_never_taken():
    assert default_name("hf-hub:someone/suspicious-vit") == "suspicious-vit"
    assert default_name("hf-hub:someone/suspicious-vit@v2.0") == "suspicious-vit@v2.0"
    assert default_name("local-dir:/models/thief-a/") == "thief-a"
    assert default_name("/models/thief-b.safetensors") == "thief-b.safetensors"
    assert default_name("/models/thief-c/model.safetensors") == "thief-c/model.safetensors"
    assert default_name("/answers/api.csv") == "api.csv"
    assert default_name("demo:direct_copy") == "direct copy"
    taken = ["suspicious-vit", "suspicious-vit (2)"]
    assert default_name("hf-hub:other/suspicious-vit", taken) == "suspicious-vit (3)"


# --- the page ------------------------------------------------------------------------------------------------------

@pytest.fixture
def demo_app(tmp_path, monkeypatch) -> AppTest:
    """The dashboard with the reduced demo loaded (its six suspects; nothing built)."""
    monkeypatch.setenv("FORENSICS_DEMO_QUICK", "1")
    monkeypatch.setenv("FORENSICS_STORE", str(tmp_path / "store"))
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    next(b for b in at.button if b.label == "Load it without building").click().run()
    assert not at.exception
    return at


def add_many(at: AppTest, text: str) -> AppTest:
    at.text_area(key="many_sources").set_value(text)
    next(b for b in at.button if b.label == "Check and add these suspects").click().run()
    assert not at.exception
    return at


def test_many_suspects_added_at_once_a_bad_line_refused_with_its_reason(demo_app, tiny_model, save_hf, tmp_path):
    at = demo_app
    thief_a = save_hf(tiny_model(num_classes=10, seed=1), "thief-a")
    thief_b = save_hf(tiny_model(num_classes=10, seed=2), "thief-b")
    three = save_hf(tiny_model(num_classes=3), "three-classes")
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).normal(size=(40, 10)).astype(np.float32))
    (tmp_path / "api.npy").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    np.save(buf, np.zeros((40, 7), np.float32))
    (tmp_path / "wrong.npy").write_bytes(buf.getvalue())
    add_many(at, f"""# the suspects of this week
local-dir:{thief_a}

local-dir:{thief_b}   # a second copy?
local-dir:{thief_a}
local-dir:{three}
not a model at all
{tmp_path / "api.npy"}
{tmp_path / "wrong.npy"}
demo:direct_copy
""")
    case = at.session_state["case"]
    names = [s.name for s in case.suspects]
    # the good lines are added once each, after the demo's six, named after their folder or file
    assert names[6:] == ["thief-a", "thief-b", "api.npy"]
    assert case.suspects[6].source == f"local-dir:{thief_a}" and case.suspects[8].answers
    assert case.cards["thief-a"]["num_classes"] == 10  # checked as a suspect added alone: it has its card
    report = " ".join(shown(m) for m in [*at.success, *at.error, *at.info])
    assert "3 of 7 lines added" in report and "**thief-a**, **thief-b**, **api.npy**" in report
    # each refused line with its reason; the line already in the list is not added again
    errors = " ".join(shown(e) for e in at.error)
    assert "3 refused" in errors
    assert f"local-dir:{three} — " in errors and "3 classes but 10 were expected" in errors
    assert "not a model at all — cannot tell what model source" in errors
    assert "wrong.npy: 7 columns" in errors and str(tmp_path) + "/wrong.npy — " in errors
    assert any("demo:direct_copy (as **direct copy**)" in shown(i) for i in at.info)
    # the refused lines stay in the box, to be fixed; nothing else; its tab stays open
    assert at.session_state["suspect_tab"] == "Add many suspects"
    assert at.text_area(key="many_sources").value.splitlines() == [
        f"local-dir:{three}", "not a model at all", str(tmp_path / "wrong.npy")]

    # fixing one of them and sending the box again: it is added, nothing added before is lost
    fixed = save_hf(tiny_model(num_classes=10, seed=3), "fixed")
    add_many(at, f"local-dir:{fixed}\nnot a model at all\n")
    assert [s.name for s in at.session_state["case"].suspects][6:] == ["thief-a", "thief-b", "api.npy", "fixed"]
    assert at.text_area(key="many_sources").value == "not a model at all"
    assert "1 of 2 lines added" in " ".join(s.value for s in at.success)
    # with more than six suspects the list scrolls in its box, and all of them can go at once
    next(b for b in at.button if b.label == "Remove all suspects…").click().run()
    next(b for b in at.button if b.label == "Remove them all").click().run()
    assert at.session_state["case"].suspects == []


def test_an_uploaded_list_and_an_empty_box(demo_app, tiny_model, save_hf):
    at = demo_app
    next(b for b in at.button if b.label == "Check and add these suspects").click().run()
    assert any("type one suspect source per line, or upload a .txt list" in shown(e) for e in at.error)
    assert len(at.session_state["case"].suspects) == 6
    folder = save_hf(tiny_model(num_classes=10), "listed")
    at.file_uploader(key="many_upload_0").upload(
        "suspects.txt", f"# from a file\nlocal-dir:{folder}\n\nlocal-dir:{folder}\n".encode(), "text/plain")
    next(b for b in at.button if b.label == "Check and add these suspects").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    assert [s.name for s in at.session_state["case"].suspects][6:] == ["listed"]
    assert "1 of 1 lines added" in " ".join(s.value for s in at.success)
    next(b for b in at.button if b.label == "Dismiss this report").click().run()
    assert not at.success
    # a report lasts until the audit runs again
    add_many(at, f"local-dir:{folder}\n")
    assert any("already in the list" in i.value for i in at.info)
    at.session_state["case"].ran_at = "2026-12-01T12:00:00+00:00"
    at.run()
    assert not any("already in the list" in i.value for i in at.info)


def test_one_suspect_alone_goes_through_the_same_checks(demo_app, tiny_model, save_hf):
    at = demo_app
    folder = save_hf(tiny_model(num_classes=10), "alone")

    def add_one(source: str, name: str = "") -> list[str]:
        for t in at.text_input:
            if t.label == "Suspect model":
                t.set_value(source)
            elif t.label == "Name (optional)":
                t.set_value(name)
        next(b for b in at.button if b.label == "Check and add suspect").click().run()
        assert not at.exception
        return [shown(e) for e in at.error]

    assert add_one(f"local-dir:{folder}", "my suspect") == []
    case = at.session_state["case"]
    assert case.suspects[-1].name == "my suspect" and case.cards["my suspect"]["num_classes"] == 10
    assert any("a suspect named 'my suspect' is already in the list" in e for e in add_one("demo:distill",
                                                                                          "my suspect"))
    assert add_one("demo:distill", "another distilled copy") == []
    assert case.suspects[-1].kind == "stolen"  # a demo suspect keeps its ground truth
    assert len(case.suspects) == 8


# --- the build's progress view with many suspects ------------------------------------------------------------------

def test_the_progress_view_sums_up_twenty_suspects(demo_app):
    from forensics.runtime.jobs import start_job
    from forensics.runtime.progress import StagePlan, WorkProgress, emit

    reached, release = threading.Event(), threading.Event()
    names = [f"suspect {i:02d}" for i in range(20)]

    def build(progress):
        progress(StagePlan([("data", "Loading the data"), ("victim", "Training the demo victim")] +
                           [(f"suspect:{n}", f"Suspect {n}: loading and verifying it") for n in names]))
        for key in ("data", "victim"):
            emit(progress, key, "start")
            emit(progress, key, "done")
        for n in names[:5]:
            emit(progress, f"suspect:{n}", "start")
            emit(progress, f"suspect:{n}", "done", "p = 0.0012")
        emit(progress, f"suspect:{names[5]}", "start")
        emit(progress, f"suspect:{names[5]}", "failed", "could not be verified: it has 3 classes but 10 were expected")
        emit(progress, f"suspect:{names[6]}", "start")
        progress(WorkProgress("logits", 2, 8))
        reached.set()
        release.wait(60)
        raise RuntimeError("stopped by the test")

    at = demo_app
    job = start_job("audit", build)
    at.session_state["job_id"] = job.id
    try:
        assert reached.wait(60), job.error
        at.switch_page("pages/shadows.py").run()
        assert not at.exception
        md = [html.unescape(shown(m)) for m in at.markdown]  # what the user reads
        assert "**Suspects** (20) — 5 verified, 1 could not be verified, 1 running, 13 waiting" in md
        # one line for the running suspect (with its bar), one per failure with its reason, no line per suspect
        assert sum("Suspect suspect 06: loading and verifying it" in m for m in md) == 1
        assert not any("Suspect suspect 12" in m for m in md)
        assert any("suspect 05</b> — could not be verified: it has 3 classes but 10 were expected" in m for m in md)
        chips = next(m for m in md if "hf-spin" not in m and m.count("<span") == 20)
        assert "✓ suspect 00 · p = 0.0012" in chips and "○ suspect 19" in chips and "● suspect 06" in chips
        assert any(re.sub(r"\\(.)", r"\1", p.proto.text).startswith("logits (2/8)") for p in at.get("progress"))
    finally:
        release.set()
        job.wait(10)
    assert job.status == "failed"
    at.run()  # the stopped build: the suspect it stopped in is marked, the others kept
    md = [html.unescape(shown(m)) for m in at.markdown]
    assert "**Suspects** (20) — 5 verified, 1 could not be verified, 1 stopped, 13 not reached" in md
    assert any("✗ suspect 06" in m and "○ suspect 19" in m for m in md)
