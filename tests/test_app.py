"""Every dashboard page on the reduced demo, through streamlit.testing.v1.AppTest (no browser)."""
from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from api_server import LoopbackApi, audit_model
from helpers import shown
from streamlit.testing.v1 import AppTest

from forensics.runtime.jobs import get_job

APP = str(Path(__file__).resolve().parent.parent / "app.py")
# AppTest runs app.py on every rerun, as the server does (conftest.navigation_like_the_server)
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("navigation_like_the_server")]
PAGES = ["pages/load.py", "pages/shadows.py", "pages/features.py", "pages/verdict.py", "pages/report.py",
         "pages/stress.py", "pages/api.py"]


@pytest.fixture
def env(store_root, monkeypatch):
    monkeypatch.setenv("FORENSICS_DEMO_QUICK", "1")
    monkeypatch.setenv("FORENSICS_STORE", str(store_root))
    return store_root


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=300)
    at.run()
    assert not at.exception
    return at


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def wait_for_job(at: AppTest, timeout: float = 900):
    job = get_job(at.session_state["job_id"])
    t = time.time()
    while job.running and time.time() - t < timeout:
        time.sleep(0.5)
    assert job.status == "done", job.error
    at.run()
    return job


def run_demo_audit(at: AppTest) -> AppTest:
    """One click on "Load the demo" builds the demo's audit and, once it is done, shows 4 · Verdict; then the
    walkthrough goes on from 2 · Shadow models."""
    button(at, "Load the demo").click().run()
    assert not at.exception and at.session_state["job_id"]  # the build started, no second click needed
    assert any(b.label == "Build shadow models and verify suspects" and b.disabled for b in at.button)  # page 2
    wait_for_job(at)
    assert at.title[0].value == "Verdict", [t.value for t in at.title]
    at.switch_page("pages/shadows.py").run()
    return at


def load_demo(at: AppTest) -> AppTest:
    """The demo loaded, not built (its suspects or settings can still change)."""
    button(at, "Load it without building").click().run()
    assert not at.exception and "job_id" not in at.session_state
    return at


def texts(at: AppTest) -> str:
    return " ".join(shown(m) for m in [*at.markdown, *at.info, *at.error, *at.warning, *at.caption])


def test_every_page_has_a_helpful_empty_state(env):
    at = new_app()
    assert "Load the audit" in at.title[0].value
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, page
        assert at.info, f"{page} shows no empty-state message"
        assert "1 · Load" in texts(at)


def test_demo_walkthrough_every_page(env):
    at = new_app()
    run_demo_audit(at)
    case = at.session_state["case"]
    assert len(case.suspects) == 6 and len(case.verdicts) == 6
    labels = [m.label for m in at.metric]
    assert "D_s samples" in labels and "Trigger success" in labels
    assert len(at.get("plotly_chart")) >= 2 and len(at.get("image")) >= 1

    at.switch_page("pages/features.py").run()
    assert not at.exception
    assert len(at.tabs) == 5 and len(at.get("plotly_chart")) >= 4

    at.switch_page("pages/verdict.py").run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert "p-value" in values
    df = at.dataframe[0].value
    assert list(df["suspect"])[:2] == ["direct copy", "fine-tuned copy"]
    assert dict(zip(df["suspect"], df["verdict"], strict=True))["direct copy"] == "evidence of derivation"
    assert dict(zip(df["suspect"], df["verdict"], strict=True))["innocent (same recipe)"] == "no evidence"
    assert "What the test means" in texts(at)
    # a stricter alpha is applied without re-running anything: the headline and every badge read it
    at.select_slider[0].set_value(0.001).run()
    assert not at.exception
    assert any("at alpha = 0.001" in m.value for m in at.markdown), [m.value for m in at.markdown][:5]
    df = at.dataframe[0].value
    strict = {s.name: v.p_value < 0.001 for s, v in case.ordered_verdicts()}
    assert dict(zip(df["suspect"], df["verdict"] == "evidence of derivation", strict=True)) == strict
    # another protocol: the table and the chart read every verdict under it
    at.selectbox[0].set_value("paper").run()
    assert not at.exception and any("not calibrated" in w.value for w in at.warning)
    from forensics.audit.verdict import format_p
    paper = {s.name: format_p(v.under("paper").p_value) for s, v in case.ordered_verdicts()}
    df = at.dataframe[0].value
    assert dict(zip(df["suspect"], df["p-value"], strict=True)) == paper
    chart = at.get("plotly_chart")[-1].proto.spec
    assert all(f"p = {p}" in chart for p in paper.values())

    at.switch_page("pages/report.py").run()
    assert not at.exception
    assert len(at.get("download_button")) == 2

    at.switch_page("pages/load.py").run()
    assert not at.exception
    assert "Model cards" in [s.value for s in at.subheader]
    # one more suspect keeps every verdict: it waits for the next build, and the pages say so
    next(t for t in at.text_input if t.label == "Suspect model").set_value("demo:innocent")
    next(t for t in at.text_input if t.label == "Name (optional)").set_value("late innocent")
    button(at, "Check and add suspect").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    assert len(case.verdicts) == 6 and at.session_state["case"].audit is not None
    assert any("not verified yet" in m.value for m in at.markdown)
    at.switch_page("pages/verdict.py").run()
    assert any("late innocent" in i.value and "no verdict yet" in i.value for i in at.info)
    at.switch_page("pages/load.py").run()
    button_remove = next(b for b in at.button if b.key == "rm-late innocent")
    button_remove.click().run()
    assert len(at.session_state["case"].suspects) == 6

    # the stress test: simulated thefts and innocents of the demo victim, verified by this audit
    at.switch_page("pages/stress.py").run()
    assert not at.exception
    assert [t.value for t in at.text_input] == ["demo:aux", "demo:innocent"]
    at.multiselect[0].set_value(["direct copy", "innocent, other seed"])
    button(at, "Run the stress test").click().run()
    assert not at.exception
    job = get_job(at.session_state["stress_job_id"])
    job.wait(900)
    assert job.status == "done", job.error
    at.run()
    assert not at.exception
    assert "flagged **1 of 1** kinds of simulated theft" in texts(at) + " ".join(m.value for m in at.success)
    table = at.dataframe[0].value
    assert list(table["simulated suspect"]) == ["direct copy", "innocent, other seed"]
    assert list(table["flagged"]) == ["1 of 1", "0 of 1"]
    assert at.get("plotly_chart")

    # 7 · API audit: the demo's fine-tuned copy behind a loopback API (top-3 answers), decided by the sequential test
    at.switch_page("pages/api.py").run()
    assert not at.exception
    a = case.audit
    source = next(s.source for s in case.suspects if s.name == "fine-tuned copy")
    logits = a.engine.logits(a.load_suspect(source), a.queries.images)
    with LoopbackApi(list(a.private.classes), model=audit_model(a, logits)) as api:
        next(t for t in at.text_input if t.label == "Endpoint URL").set_value(api.url("/top-k?k=3"))
        next(t for t in at.text_input if t.label == "Suspect name").set_value("their API")
        button(at, "Start the API audit").click().run()
        assert not at.exception and not at.error, [shown(e) for e in at.error]
        job = get_job(at.session_state["api_job_id"])
        job.wait(600)
        assert job.status == "done", job.error
        at.run()
        assert max(api.asked.values()) == 1  # no query asked twice
    assert not at.exception
    said = " ".join(shown(m) for m in [*at.error, *at.success])  # evidence is said in red, as on 4 · Verdict
    assert "their API" in said and "evidence of derivation" in said, said
    assert at.get("plotly_chart")  # the running p-value
    paid = sum(api.asked.values())
    assert paid < len(a.queries) / 4
    at.switch_page("pages/verdict.py").run()
    assert not at.exception
    at.selectbox[0].set_value("sequential").run()
    assert not at.exception
    rows = dict(zip(at.dataframe[0].value["suspect"], at.dataframe[0].value["verdict"], strict=True))
    assert rows["their API"] == "evidence of derivation"


def test_two_sessions_at_once_do_not_interfere(env):
    a, b = new_app(), new_app()
    for at in (a, b):
        load_demo(at)
        at.switch_page("pages/shadows.py").run()
    button(a, "Build shadow models and verify suspects").click().run()
    button(b, "Build shadow models and verify suspects").click().run()
    assert a.session_state["job_id"] != b.session_state["job_id"]
    wait_for_job(a)
    wait_for_job(b)
    pa = {k: v.p_value for k, v in a.session_state["case"].verdicts.items()}
    pb = {k: v.p_value for k, v in b.session_state["case"].verdicts.items()}
    assert pa == pb and len(pa) == 6
    # removing a suspect in one session leaves the other untouched
    a.switch_page("pages/load.py").run()
    button(a, "Remove").click().run()
    assert len(a.session_state["case"].suspects) == 5 and len(b.session_state["case"].suspects) == 6


def test_unknown_hub_id_offline_is_a_clear_error_and_keeps_inputs(env, offline_hub, tmp_path):
    at = new_app()
    for t in at.text_input:
        if t.label == "Victim model":
            t.set_value("hf-hub:nobody/does-not-exist")
        elif t.label == "Foundation model":
            t.set_value("demo:foundation")
    from PIL import Image

    for name, shade in (("data", 0), ("held", 200)):  # held-out images other than the private ones
        for c in ("a", "b"):
            (tmp_path / name / c).mkdir(parents=True)
            Image.fromarray(np.full((8, 8), shade + (c == "b"), np.uint8)).save(tmp_path / name / c / "x.png")
    for t in at.text_input:
        if t.label.startswith("Private training data"):
            t.set_value(str(tmp_path / "data"))
        elif t.label.startswith("Held-out data"):
            t.set_value(str(tmp_path / "held"))
    button(at, "Load victim and data").click().run()
    assert not at.exception
    assert any("HF_HUB_OFFLINE" in shown(e) for e in at.error)
    assert [t.value for t in at.text_input if t.label == "Victim model"] == ["hf-hub:nobody/does-not-exist"]


def test_zip_with_parent_paths_is_refused(env, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data/cat/ok.png", b"x")
        z.writestr("../../evil.txt", b"pwned")
    at = new_app()
    for t in at.text_input:
        if t.label == "Victim model" or t.label == "Foundation model":
            t.set_value("demo:foundation")
    at.file_uploader(key="data_zip").upload("data.zip", buf.getvalue(), "application/zip")
    button(at, "Load victim and data").click().run()
    assert not at.exception
    assert any("unsafe path" in shown(e) for e in at.error)
    assert not (Path(env).parent / "evil.txt").exists()


def test_bad_answers_and_bad_suspects_get_clear_messages(env, monkeypatch, tiny_model, save_hf):
    monkeypatch.setenv("FORENSICS_MAX_UPLOAD_MB", "1")
    at = new_app()
    run_demo_audit(at)
    at.switch_page("pages/load.py").run()
    n_q = len(at.session_state["case"].audit.queries)

    def upload(name: str, content: bytes):
        at.file_uploader(key="answers_upload").set_value((name, content, "application/octet-stream")).run()
        button(at, "Add these answers").click().run()
        assert not at.exception
        return [shown(e) for e in at.error]

    buf = io.BytesIO()
    np.save(buf, np.zeros((n_q, 7), np.float32))       # wrong number of classes
    assert any("7 columns" in e for e in upload("wrong.npy", buf.getvalue()))
    buf = io.BytesIO()
    bad = np.zeros((n_q, 10), np.float32)
    bad[3, 2] = np.nan
    np.save(buf, bad)
    assert any("NaN" in e for e in upload("nan.npy", buf.getvalue()))
    assert any(".csv or .npy" in e for e in upload("answers.txt", b"1,2,3"))
    assert any("limit is 1 MB" in e for e in upload("big.npy", b"\0" * (2 * 1024 ** 2)))
    assert len(at.session_state["case"].suspects) == 6  # nothing was added, nothing was lost
    # a suspect with another number of classes
    three = save_hf(tiny_model(num_classes=3))
    for t in at.text_input:
        if t.label == "Suspect model":
            t.set_value(f"local-dir:{three}")
    button(at, "Check and add suspect").click().run()
    assert not at.exception
    assert any("3 classes but 10 were expected" in shown(e) for e in at.error)
    # good answers are accepted and verified
    audit = at.session_state["case"].audit
    logits = audit.engine.logits(audit.victim, audit.queries.images)
    buf = io.BytesIO()
    np.save(buf, logits)
    assert upload("api.npy", buf.getvalue()) == []
    assert [s.name for s in at.session_state["case"].suspects][-1] == "api.npy"


def test_the_entry_script_applies_a_finished_job_once(env):
    """A finished background audit becomes the session's case when the app reruns (on any page), once;
    reading the case has no side effect."""
    from forensics.cases.case import Case
    from forensics.runtime.jobs import start_job

    at = new_app()
    result = Case.demo(0, quick=True)
    job = start_job("audit", lambda progress: result).wait()
    at.session_state["job_id"] = job.id
    at.switch_page("pages/verdict.py").run()
    assert not at.exception
    assert at.session_state["case"] is result
    at.session_state["case"] = Case()  # the user starts over: the old job's result is not applied again
    at.run()
    assert at.session_state["case"].spec is None


def open_app(case_id: str, page: str | None = None) -> AppTest:
    """A new browser session on the address ``?audit=<case_id>`` (what F5 or a bookmark does)."""
    at = AppTest.from_file(APP, default_timeout=300)
    at.query_params["audit"] = case_id
    at.run()
    assert not at.exception
    if page:
        at.switch_page(page).run()
    return at


def wait_session_job(at: AppTest, timeout: float = 600) -> None:
    if "job_id" in at.session_state:
        job = get_job(at.session_state["job_id"])
        job.wait(timeout)
        assert job.status == "done", job.error
        at.run()
        assert not at.exception


def test_an_audit_survives_a_reload_a_restart_and_reopens_from_its_record(env, tmp_path):
    import json

    import streamlit as st

    from forensics.audit.verdict import headline
    from forensics.cases import casefile

    at = new_app()
    run_demo_audit(at)
    case = at.session_state["case"]
    p_values = {n: v.p_value for n, v in case.verdicts.items()}
    assert at.query_params["audit"] in (case.id, [case.id])
    assert (Path(env) / "cases" / f"{case.id}.json").is_file()

    # F5 on the verdict page: a new session finds the same audit, verdicts and all, without a job
    again = open_app(case.id, "pages/verdict.py")
    assert {n: v.p_value for n, v in again.session_state["case"].verdicts.items()} == p_values
    want = headline([v.under() for v in case.verdicts.values()], case.audit.config.alpha)
    assert want.startswith("2 of 6 suspects show evidence")
    assert any(want in m.value for m in again.markdown)

    # the server restarted (its memory is gone): the audit comes back from the store, nothing is recomputed
    st.cache_resource.clear()
    restarted = open_app(case.id)
    wait_session_job(restarted)
    back = restarted.session_state["case"]
    assert back.id == case.id and {n: v.p_value for n, v in back.verdicts.items()} == p_values
    assert sum(back.audit.engine.store.stats.computed.values()) == 0
    restarted.switch_page("pages/features.py").run()
    assert not restarted.exception and restarted.get("plotly_chart")

    # an audit.json given by its path reopens as a new case with the recorded verdicts
    record = tmp_path / "my-audit.json"
    record.write_text(json.dumps(casefile.case_record(case)))
    other = new_app()
    next(t for t in other.text_input if t.key == "record_path").set_value(str(record)).run()
    button(other, "Reopen this record").click().run()
    assert not other.exception
    wait_session_job(other)
    reopened = other.session_state["case"]
    assert reopened.id != case.id and {n: v.p_value for n, v in reopened.verdicts.items()} == p_values
    # a file that is not a record is refused with a message that names it
    junk = tmp_path / "notes.json"
    junk.write_text('{"hello": 1}')
    next(t for t in other.text_input if t.key == "record_path").set_value(str(junk)).run()
    button(other, "Reopen this record").click().run()
    assert any("notes.json is not a Holmes forensics audit record" in shown(e) for e in other.error)
    assert other.session_state["case"] is reopened

    # a second "Load the demo" asks first; the old audit stays in Recent audits
    button(other, "Load it without building").click().run()
    assert other.session_state["case"] is reopened and any("starts a new audit" in w.value for w in other.warning)
    button(other, "Start a new demo audit").click().run()
    fresh = other.session_state["case"]
    assert fresh.id != reopened.id and not fresh.verdicts
    assert {r.id for r in casefile.recent_cases(casefile.ArtifactStore(env), 20)} >= {case.id, reopened.id, fresh.id}
    opened = next(b for b in other.button if b.key == f"open-{case.id}")
    opened.click().run()
    assert other.session_state["case"].id == case.id


def test_other_pages_say_how_far_a_running_audit_is(env):
    import threading

    from forensics.runtime.progress import StagePlan, emit

    release = threading.Event()

    def slow(progress):
        progress(StagePlan([("data", "Loading the data"), ("victim", "Training the demo victim")]))
        emit(progress, "data", "start")
        emit(progress, "data", "done")
        emit(progress, "victim", "start")
        release.wait(60)
        raise RuntimeError("stopped by the test")

    at = new_app()
    load_demo(at)
    from forensics.runtime.jobs import start_job

    job = start_job("audit", slow)
    at.session_state["job_id"] = job.id
    try:
        at.switch_page("pages/verdict.py").run()
        assert any("running, 50% done" in i.value for i in at.info), [i.value for i in at.info]
        at.switch_page("pages/shadows.py").run()
        assert not at.exception
        build = next(b for b in at.button if b.label == "Build shadow models and verify suspects")
        assert build.disabled
    finally:
        release.set()
        job.wait(10)


def test_uploads_are_checked_at_once_and_leave_nothing_behind(env, tiny_model, save_hf, tmp_path):
    at = new_app()
    load_demo(at)
    uploads = Path(env) / "uploads"

    def add_answers(name: str, content: bytes) -> list[str]:
        at.file_uploader(key="answers_upload").set_value((name, content, "application/octet-stream")).run()
        button(at, "Add these answers").click().run()
        assert not at.exception
        return [shown(e) for e in at.error]

    # before the audit has run: the format and the class count are checked, and the page says so
    assert any("Until then, answers are checked for their format and class count only" in c.value
               for c in [*at.markdown, *at.caption])
    import hashlib

    junk = b"hello,world\nfoo,bar\n"
    errors = add_answers("junk.csv", junk)
    assert any("junk.csv" in e and "numeric" in e for e in errors), errors
    assert not any("uploads/" in e for e in errors)
    buf = io.BytesIO()
    np.save(buf, np.zeros((50, 7), np.float32))
    assert any("wrong.npy: 7 columns" in e for e in add_answers("wrong.npy", buf.getvalue()))
    for content, suffix in ((junk, ".csv"), (buf.getvalue(), ".npy")):  # refused files are not kept
        assert not (uploads / f"{hashlib.sha256(content).hexdigest()}{suffix}").exists()
    assert len(at.session_state["case"].suspects) == 6

    # a model upload: a zipped save_for_hf folder is checked like any source and shown by its own name
    folder = save_hf(tiny_model(num_classes=10), "suspect-folder")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for f in folder.iterdir():
            z.write(f, f"suspect-folder/{f.name}")
    at.file_uploader(key="model_upload").set_value(("suspect.zip", buf.getvalue(), "application/zip"))
    button(at, "Check and add suspect").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    added = at.session_state["case"].suspects[-1]
    assert added.name == "suspect.zip" and added.shown_source == "uploaded suspect.zip"
    assert added.source.startswith("local-dir:") and Path(added.source[len("local-dir:"):], "config.json").is_file()
    # a weights file in the victim's architecture
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(0)
    weights = tmp_path / "my-suspect.safetensors"
    save_file(timm.create_model("tf_efficientnet_lite0", num_classes=10).state_dict(), str(weights))
    at.file_uploader(key="model_upload").set_value(("my-suspect.safetensors", weights.read_bytes(),
                                                     "application/octet-stream"))
    button(at, "Check and add suspect").click().run()
    assert not at.exception and not at.error, [shown(e) for e in at.error]
    assert at.session_state["case"].suspects[-1].shown_source == "uploaded my-suspect.safetensors"
    assert at.session_state["case"].cards["my-suspect.safetensors"]["source"] == "uploaded my-suspect.safetensors"
    # a zip with no model in it: a clear error naming the file, no folder left in the store
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "no model here")
    at.file_uploader(key="model_upload").set_value(("empty.zip", buf.getvalue(), "application/zip"))
    button(at, "Check and add suspect").click().run()
    assert any("'empty.zip' holds no config.json" in shown(e) for e in at.error)
    assert len([p for p in (uploads / "model").iterdir() if p.is_dir()]) == 1
    # a text file named like weights: refused, and not kept in the store either
    kept = sorted(p.name for p in (uploads / "model").iterdir())
    at.file_uploader(key="model_upload").set_value(("stolen.safetensors", b"not weights at all\n",
                                                     "application/octet-stream"))
    button(at, "Check and add suspect").click().run()
    assert any("stolen.safetensors" in shown(e) for e in at.error), [shown(e) for e in at.error]
    assert sorted(p.name for p in (uploads / "model").iterdir()) == kept


def test_held_out_data_that_repeats_the_private_data_is_refused_at_load(env, tmp_path):
    """The same folder given as private and held-out data is refused when it is loaded, not when the build starts."""
    from PIL import Image

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (data / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(data / c / f"{i}.png")
    at = new_app()
    for t in at.text_input:
        if t.label in ("Victim model", "Foundation model"):
            t.set_value("demo:foundation")
        elif t.label.startswith("Private training data") or t.label.startswith("Held-out data"):
            t.set_value(str(data))
    button(at, "Load victim and data").click().run()
    assert not at.exception
    assert any("shares 6 of its images with the private data" in shown(e) for e in at.error)
    assert not any("Loaded" in s.value for s in at.success)


def test_a_mistyped_foundation_is_refused_at_load_and_saves_no_audit(env, tmp_path):
    """The foundation is loaded with the victim: a wrong path is said at Load, and no audit is saved with it."""
    from PIL import Image

    from forensics.cases import casefile

    rng = np.random.default_rng(1)
    for part in ("data", "heldout"):
        for c in ("a", "b"):
            (tmp_path / part / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / part / c / f"{i}.png")
    before = {r.id for r in casefile.recent_cases(casefile.ArtifactStore(env), 50)}
    at = new_app()
    for t in at.text_input:
        if t.label == "Victim model":
            t.set_value("demo:foundation")
        elif t.label == "Foundation model":
            t.set_value(str(tmp_path / "no-such-foundation.safetensors"))
        elif t.label.startswith("Private training data"):
            t.set_value(str(tmp_path / "data"))
        elif t.label.startswith("Held-out data"):
            t.set_value(str(tmp_path / "heldout"))
    button(at, "Load victim and data").click().run()
    assert not at.exception
    assert any("no-such-foundation" in shown(e) for e in at.error), [shown(e) for e in at.error]
    assert at.session_state["case"].spec is None
    assert {r.id for r in casefile.recent_cases(casefile.ArtifactStore(env), 50)} == before
