"""A real browser clicks through the whole demo audit: Debian's chromium driven by Playwright
against `streamlit run app.py`, with a screenshot of every page (out/screenshots/)."""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.browser, pytest.mark.slow]
SHOTS = ROOT / "out" / "screenshots"
CHROMIUM = shutil.which("chromium")

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover
    sync_playwright = None

if CHROMIUM is None or sync_playwright is None:
    if os.environ.get("CI"):
        pytest.fail("the browser test needs Debian's chromium and the playwright package; .ci/run installs both "
                    "through scripts/setup.sh --dev", pytrace=False)
    pytest.skip("chromium or playwright missing: run `bash scripts/setup.sh --dev`", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(store_root, **more_env: str):
    """`streamlit run app.py` on a free port over ``store_root`` (``more_env``: more settings); yields its address."""
    port = free_port()
    env = dict(os.environ, FORENSICS_DEMO_QUICK="1", FORENSICS_STORE=str(store_root), **more_env)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"streamlit did not start:\n{proc.stdout.read()}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def server(store_root):
    with streamlit_server(store_root) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg = browser.new_page(viewport={"width": 1440, "height": 1600})
    pg.goto(server)
    yield pg
    pg.close()


def shot(pg, name: str) -> Path:
    """A full-page screenshot (out/screenshots/), once nothing on the page failed."""
    pg.wait_for_timeout(800)  # let plotly finish drawing
    no_exception(pg)
    path = SHOTS / name
    pg.screenshot(path=str(path), full_page=True)
    return path


def chart_drawn(pg, title: str, timeout: int = 120_000) -> None:
    """Wait until a plotly chart titled ``title`` is drawn: scrolled into view first (a chart below the fold may be
    drawn late on a busy machine); a screenshot of the page is kept when it is not."""
    charts = pg.get_by_test_id("stPlotlyChart")
    try:
        charts.first.wait_for(timeout=timeout)
        for i in range(charts.count()):
            charts.nth(i).scroll_into_view_if_needed()
        pg.locator(".js-plotly-plot .gtitle", has_text=title).first.wait_for(timeout=timeout)
    except Exception:
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / "chart-not-drawn.png"), full_page=True)
        raise


def no_exception(pg) -> None:
    """Streamlit draws an uncaught error as its exception element (details hidden by .streamlit/config.toml)."""
    assert pg.get_by_test_id("stException").count() == 0, pg.get_by_test_id("stException").first.inner_text()


def main_text(pg) -> str:
    return pg.get_by_test_id("stMain").inner_text()


def side_text(pg) -> str:
    return pg.get_by_test_id("stSidebar").inner_text()


def audit_in_address(pg) -> str:
    """The audit id the address bar shows (the test fails when it has none)."""
    found = re.search(r"[?&]audit=([0-9a-f]+)", pg.url)
    assert found, f"no ?audit= in the address {pg.url}"
    return found.group(1)


def nav(pg, label: str, title: str) -> None:
    """Click a sidebar link until the page's title shows (a click during a rerun can be swallowed)."""
    for _ in range(5):
        pg.get_by_role("link", name=label).first.click()
        try:
            pg.get_by_role("heading", name=title).first.wait_for(timeout=10_000)
            return
        except Exception:  # noqa: BLE001 - retried, then the last wait fails the test
            pg.wait_for_timeout(1000)
    pg.get_by_role("heading", name=title).first.wait_for(timeout=10_000)


def card(pg, name: str):
    """The verdict card of suspect ``name`` (the innermost block holding its name and a p-value)."""
    return pg.get_by_test_id("stVerticalBlock").filter(has=pg.get_by_text(name, exact=True)).filter(
        has_text="p-value").last


DONE = re.compile(r"running, (\d+)% done")
FIRST = {}  # what the click-through leaves for the test after it (the audit id)


def test_click_through_the_demo_audit(page, store_root):
    pg = page
    pg.get_by_text("Load the audit").first.wait_for(timeout=60_000)
    shot(pg, "01-load-empty.png")
    # one click: the demo loads, its build starts and shows on 2 · Shadow models, and it ends on 4 · Verdict
    pg.get_by_role("button", name="Load the demo").click()
    pg.wait_for_url(re.compile(r"/shadows\?audit=[0-9a-f]+"), timeout=60_000)
    audit = audit_in_address(pg)
    pg.get_by_text("Building the audit").first.wait_for(timeout=60_000)
    shares: dict[str, list[int]] = {"main": [], "sidebar": []}
    reloaded = False
    while "/verdict" not in pg.url:
        for where, text in (("main", main_text), ("sidebar", side_text)):
            try:
                found = DONE.search(text(pg))
            except Exception:  # noqa: BLE001 - the page switched meanwhile
                found = None
            if found:
                shares[where].append(int(found.group(1)))
        if not reloaded and len(shares["main"]) >= 3:
            shot(pg, "02-building.png")
            pg.reload()  # F5 during the build: the same audit, the build's view again
            assert audit_in_address(pg) == audit
            pg.get_by_text("Building the audit").first.wait_for(timeout=60_000)
            reloaded = True
        pg.wait_for_timeout(700)
        assert len(shares["main"]) < 2000, "the build never ended on 4 · Verdict"
    assert reloaded, shares  # the build was watched, and survived a reload
    for where, seen in shares.items():
        assert seen and seen == sorted(seen), (where, seen)  # one share done, never going back, in both places
    assert audit_in_address(pg) == audit
    headline = "2 of 6 suspects show evidence of derivation from your model at alpha = 0.01."
    pg.get_by_text(headline).wait_for(timeout=60_000)
    chart_drawn(pg, "Evidence per suspect")  # the table and chart drawn, not loading
    shot(pg, "06-verdict.png")
    # the reduced demo: the direct and the fine-tuned copy are caught, nobody else is accused
    for name in ("direct copy", "fine-tuned copy"):
        text = card(pg, name).inner_text()
        assert "evidence of derivation" in text and "no evidence" not in text, (name, text)
    for name in ("distilled copy", "label-query extraction", "innocent (same recipe)",
                 "innocent (longer, on aux data)"):
        assert "no evidence of derivation" in card(pg, name).inner_text(), name
    assert pg.get_by_text("2 of 6 flagged (p < alpha)").count() == 1
    # F5: the audit is in the address and comes back, verdicts and all
    pg.reload()
    pg.get_by_text(headline).wait_for(timeout=60_000)
    assert pg.get_by_text("2 of 6 flagged (p < alpha)").count() == 1

    # every link of the menu keeps the audit in the address; F5 on each page finds it
    for label, title, path in (("2 · Shadow models", "Shadow models", "/shadows"),
                               ("3 · Feature differences", "Feature differences", "/features"),
                               ("1 · Load", "Load the audit", "/"),
                               ("4 · Verdict", "Verdict", "/verdict")):
        nav(pg, label, title)
        pg.wait_for_timeout(500)
        assert audit_in_address(pg) == audit and urlparse(pg.url).path == path, (label, pg.url)
        pg.reload()
        pg.get_by_role("heading", name=title).first.wait_for(timeout=30_000)
        pg.wait_for_timeout(1500)
        assert pg.get_by_text("No victim loaded.").count() == 0, label
        assert "demo:victim" in side_text(pg), label
        if path == "/":  # the direct copy's card says it carries the victim's own weights; nobody else's does
            assert main_text(pg).count("the victim's own weights (same fingerprint)") == 1

    nav(pg, "2 · Shadow models", "Shadow models")
    pg.get_by_text("Trigger success", exact=True).wait_for(timeout=60_000)
    pg.get_by_text("Loss order of the victim on its private data").first.wait_for(timeout=60_000)
    shot(pg, "03-shadow-models.png")

    nav(pg, "3 · Feature differences", "Feature differences")
    pg.get_by_text("How much better each suspect fits").first.wait_for(timeout=60_000)
    shot(pg, "04-feature-differences.png")
    pg.get_by_role("tab", name="2-D projection").click()
    pg.get_by_text("principal components").first.wait_for(timeout=60_000)
    shot(pg, "05-projection.png")

    nav(pg, "5 · Report", "Report")
    assert audit_in_address(pg) == audit
    pg.get_by_role("button", name="Download report.html").wait_for(timeout=120_000)
    with pg.expect_download() as dl:
        pg.get_by_role("button", name="Download report.html").click()
    html = Path(dl.value.path()).read_text()
    assert "Holmes forensics" in html and "plotly" in html and "direct copy" in html
    with pg.expect_download() as dl:
        pg.get_by_role("button", name="Download audit.json").click()
    import json
    record = json.loads(Path(dl.value.path()).read_text())
    assert {s["name"] for s in record["suspects"]} >= {"direct copy", "innocent (same recipe)"}
    # the PDF, printed by chromium: its text carries the headline
    pg.get_by_label("Case name").fill("Demo case 17")
    pg.get_by_label("Case name").press("Enter")
    pg.get_by_role("button", name="Prepare the PDF").click()
    pg.get_by_role("button", name="Download report.pdf").wait_for(timeout=180_000)
    with pg.expect_download() as dl:
        pg.get_by_role("button", name="Download report.pdf").click()
    pdf = Path(dl.value.path()).read_bytes()
    assert pdf.startswith(b"%PDF")
    from pypdf import PdfReader
    text = " ".join(page.extract_text() for page in PdfReader(dl.value.path()).pages)
    assert "Demo case 17" in text and "2 of 6 suspects show evidence" in " ".join(text.split())
    shot(pg, "07-report.png")

    nav(pg, "6 · Stress test", "Stress test")
    pg.get_by_role("button", name="Run the stress test").click()
    pg.get_by_text("Stress test: running").first.wait_for(timeout=60_000)
    pg.reload()  # F5 while it runs: its progress shows again, nothing invites a second run
    pg.get_by_text("Stress test: running").first.wait_for(timeout=60_000)
    assert pg.get_by_text("Pick the simulated suspects").count() == 0
    assert pg.get_by_role("button", name="Run the stress test").is_disabled()
    pg.get_by_text("Detection power per simulated suspect").wait_for(timeout=900_000)
    pg.get_by_text("This audit's own verdicts").wait_for(timeout=60_000)
    shot(pg, "08-stress-test.png")
    assert pg.get_by_text(re.compile(r"kinds of simulated theft in every run")).count() == 1
    assert audit_in_address(pg) == audit
    # the Verdict page's checks now read the stress test's detection power
    nav(pg, "4 · Verdict", "Verdict")
    pg.get_by_text(re.compile(r"kinds of simulated theft flagged in every run")).first.wait_for(timeout=30_000)
    assert "Detection power for this victim" in main_text(pg) and "not measured yet" not in main_text(pg)

    # 7 · API audit: the demo's fine-tuned copy behind a loopback API, decided in a few dozen queries; its verdict
    # joins the others on 4 · Verdict, which opens on the sequential protocol
    from api_server import LoopbackApi, audit_model

    from forensics import ArtifactStore, open_audit
    from forensics.demo.assets import demo_spec

    a = open_audit(demo_spec(0, quick=True), ArtifactStore(store_root))  # the audit the server built: read, not built
    logits = a.engine.logits(a.load_suspect("demo:fine_tune"), a.queries.images)
    with LoopbackApi(list(a.private.classes), model=audit_model(a, logits), jitter_s=0.02) as api:
        nav(pg, "7 · API audit", "API audit")
        assert audit_in_address(pg) == audit
        pg.get_by_role("textbox", name="Endpoint URL").fill(api.url("/top-k?k=3"))
        pg.get_by_role("textbox", name="Suspect name").fill("their API")
        pg.get_by_role("button", name="Start the API audit").click()
        pg.get_by_role("button", name="See it with the other suspects on 4 · Verdict").wait_for(timeout=300_000)
        assert max(api.asked.values()) == 1 and sum(api.asked.values()) <= 200
    chart_drawn(pg, "Running p-value")
    assert "their API: evidence of derivation" in main_text(pg)
    shot(pg, "09-api-audit.png")
    pg.get_by_role("button", name="See it with the other suspects on 4 · Verdict").click()
    pg.wait_for_url(re.compile(r"/verdict\?audit="), timeout=60_000)
    assert audit_in_address(pg) == audit
    card(pg, "their API").wait_for(timeout=60_000)
    assert "evidence of derivation" in card(pg, "their API").inner_text()
    assert "Sequential membership test" in main_text(pg)
    FIRST["audit"] = audit


def test_a_bookmarked_page_opens_with_its_audit_after_a_server_restart(store_root, browser):
    """A fresh server (a restart), and the first address it serves is a page's bookmark: the page runs under the
    app's menu and reopens the audit (Streamlit alone would run the page file without the app)."""
    audit = FIRST.get("audit")
    if audit is None:
        pytest.skip("needs the audit of the click-through test")
    with streamlit_server(store_root) as url:
        pg = browser.new_page(viewport={"width": 1440, "height": 1200})
        pg.goto(f"{url}/report?audit={audit}")
        # the demo's six and the API suspect of the click-through, each under the protocol that decided it
        pg.get_by_text("3 of 7 suspects show evidence of derivation").first.wait_for(timeout=120_000)
        assert pg.get_by_role("link", name="1 · Load").count() == 1  # the app's menu, not a list of files
        assert pg.get_by_role("link", name="report", exact=True).count() == 0  # Streamlit's file list
        assert "Reopening the audit" not in main_text(pg)
        assert audit_in_address(pg) == audit and urlparse(pg.url).path == "/report"
        shot(pg, "09-bookmark-after-restart.png")
        # the last build's log and its training curves were kept with the audit: the restart did not lose them (the
        # build trained the reduced demo's models, or, when an earlier test of the session had stored them, none)
        from forensics.cases.joblog import load_job_log
        from forensics.runtime.store import ArtifactStore

        kept = load_job_log(ArtifactStore(store_root), audit)
        assert kept is not None and kept.status == "done"
        nav(pg, "2 · Shadow models", "Shadow models")
        pg.get_by_text(re.compile(r"Build log: every stage of the last build")).first.click()
        pg.get_by_text("Loss order of the victim —").first.wait_for(timeout=60_000)  # the kept stage list
        if kept.curves():
            title = "Running training loss of every model this build trained"
            chart_drawn(pg, title)
            chart = pg.locator(".js-plotly-plot", has=pg.locator(".gtitle", has_text=title)).first
            if len(kept.curves()) > 1:  # plotly shows no legend for a single line
                assert chart.locator(".legend .traces").count() == len(kept.curves())
            chart.scroll_into_view_if_needed()
        else:
            pg.get_by_text("No model trained in this build").first.wait_for(timeout=60_000)
        shot(pg, "09b-build-log-after-restart.png")
        pg.close()


def test_bad_inputs_are_refused_at_load_and_leave_nothing_behind(server, browser, store_root, tmp_path):
    """In the browser, as a user types them: held-out data that repeats the private images is refused when it is
    loaded (the form keeps what was typed, no audit is made), and a text file uploaded as weights is refused and not
    kept in the store."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (tmp_path / "data" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "data" / c / f"{i}.png")
    pg = browser.new_page(viewport={"width": 1440, "height": 1400})
    pg.goto(server)
    pg.get_by_text("Load the audit").first.wait_for(timeout=60_000)
    pg.get_by_text("Audit your own model").first.click()
    pg.get_by_label("Victim model").fill("demo:foundation")
    pg.get_by_label("Foundation model").fill("demo:foundation")
    pg.get_by_label("Private training data", exact=False).first.fill(str(tmp_path / "data"))
    pg.get_by_label("Held-out data", exact=False).first.fill(str(tmp_path / "data"))
    pg.get_by_role("button", name="Load victim and data").click()
    pg.get_by_text(re.compile(r"shares 6 of its images with the private data")).first.wait_for(timeout=60_000)
    assert pg.get_by_label("Held-out data", exact=False).first.input_value() == str(tmp_path / "data")  # kept
    assert "audit=" not in pg.url and "No victim loaded." in side_text(pg)
    shot(pg, "10-load-refuses-repeated-heldout.png")

    pg.get_by_role("button", name="Load it without building").click()
    pg.get_by_text("demo:direct_copy").first.wait_for(timeout=60_000)
    models = store_root / "uploads" / "model"
    before = sorted(p.name for p in models.iterdir()) if models.is_dir() else []
    weights = tmp_path / "stolen.safetensors"
    weights.write_text("not weights at all\n")
    uploader = pg.get_by_test_id("stFileUploader").filter(has_text="upload the suspect's weights")
    uploader.locator("input[type=file]").set_input_files(str(weights))
    pg.wait_for_timeout(1500)
    pg.get_by_role("button", name="Check and add suspect").click()
    pg.get_by_text(re.compile(r"stolen\.safetensors")).first.wait_for(timeout=60_000)
    pg.wait_for_timeout(1000)
    assert pg.get_by_test_id("stAlert").filter(has_text="stolen.safetensors").count() >= 1
    assert (sorted(p.name for p in models.iterdir()) if models.is_dir() else []) == before  # nothing kept
    shot(pg, "11-load-refuses-a-text-file-as-weights.png")
    pg.close()


def test_a_shared_server_asks_to_sign_in_and_refuses_a_path_outside_its_data_root(tmp_path, browser):
    """Issue 19: in shared mode (a users file and a data root) the browser shows only a sign-in form until the user
    signs in, and the Load page refuses a server path outside the data root with a message that names the path and
    quotes nothing of the file."""
    from forensics.runtime.access import add_user

    add_user(tmp_path / "users", "alice", "correct horse battery staple")
    (tmp_path / "data").mkdir()
    with streamlit_server(tmp_path / "store", FORENSICS_USERS_FILE=str(tmp_path / "users"),
                          FORENSICS_DATA_ROOT=str(tmp_path / "data")) as url:
        pg = browser.new_page(viewport={"width": 1440, "height": 1200})
        try:
            pg.goto(url)
            pg.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
            assert pg.get_by_role("button", name="Load the demo").count() == 0
            side = pg.get_by_test_id("stSidebar")
            assert side.count() == 0 or "Verdict" not in side.inner_text()  # no menu before signing in
            pg.get_by_label("Name").fill("alice")
            pg.get_by_label("Password", exact=True).fill("not the password")
            pg.get_by_role("button", name="Sign in").click()
            pg.get_by_text("Wrong name or password.").wait_for(timeout=30_000)
            SHOTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(SHOTS / "shared-sign-in.png"))
            pg.get_by_label("Password", exact=True).fill("correct horse battery staple")
            pg.get_by_role("button", name="Sign in").click()
            pg.get_by_role("button", name="Load the demo").wait_for(timeout=60_000)
            assert "Signed in as alice" in pg.get_by_test_id("stSidebar").inner_text()
            pg.get_by_text("Recent audits", exact=True).click()  # the reopen form sits in that expander
            field = pg.locator("input[aria-label='…or its path on this server']")
            field.fill("/etc/passwd")
            field.press("Enter")  # the value reaches the server; the button is enabled once it has
            reopen = pg.get_by_role("button", name="Reopen this record")
            for _ in range(40):
                if reopen.is_enabled():
                    break
                pg.wait_for_timeout(250)
            pg.wait_for_timeout(1000)  # the rerun the Enter started has finished
            reopen.click()
            error = pg.get_by_text("outside the folder this server may read")
            try:
                error.wait_for(timeout=30_000)
            except Exception:
                pg.screenshot(path=str(SHOTS / "shared-refused-failed.png"))
                raise
            text = main_text(pg)
            assert "/etc/passwd" in text and "root:x:0:0" not in text
            no_exception(pg)
            pg.screenshot(path=str(SHOTS / "shared-refused.png"))
        finally:
            pg.close()


def test_hostile_suspect_names_fetch_nothing_on_the_dashboard(server, browser, quick_demo, tmp_path):
    """Issue 19, the dashboard's surfaces: a record whose suspects are named to fetch a URL (markdown image, HTML,
    CSS), reopened in the browser; Load, Feature differences and Verdict draw the names (cards, headlines, tables,
    chips, plotly figures) and a loopback server must see no request.  The names read literally."""
    import dataclasses
    import json

    from test_security import Loopback

    from forensics.report.record import build_report

    srv = Loopback()
    try:
        u = srv.url
        names = [f"![md]({u}/md)", f"<img src={u}/img>", f"thief<span style='background:url({u}/css)'>x</span>"]
        rows = [(n, None, dataclasses.replace(r.verdict, suspect=n)) for r, n in zip(quick_demo.suspects, names,
                                                                                      strict=False)]
        rec = build_report(quick_demo.audit, rows, info={"case_name": f"case <img src={u}/case>"},
                           sources={n: {"source": r.suspect.source} for r, n in zip(quick_demo.suspects, names,
                                                                                    strict=False)})
        (tmp_path / "audit.json").write_text(json.dumps(rec))
        pg = browser.new_page(viewport={"width": 1440, "height": 1400})
        pg.goto(server)
        pg.get_by_text("Load the audit").first.wait_for(timeout=60_000)
        pg.get_by_text("Recent audits", exact=False).first.wait_for(timeout=60_000)
        pg.wait_for_timeout(1500)
        if not pg.get_by_role("button", name="Reopen this record").is_visible():  # in the Recent audits expander
            pg.get_by_text("Recent audits", exact=False).first.click()
        up = pg.get_by_test_id("stFileUploader").filter(has_text="Upload audit.json")
        up.locator("input[type=file]").set_input_files(str(tmp_path / "audit.json"))
        pg.wait_for_timeout(1500)
        pg.get_by_role("button", name="Reopen this record").click()
        pg.get_by_text("thief<span", exact=False).first.wait_for(timeout=120_000)  # the name, literally
        for page in ("Feature differences", "Verdict"):
            pg.get_by_role("link", name=re.compile(page)).first.click()
            pg.wait_for_timeout(6000)  # the reopening job, then plotly draws the figures
            no_exception(pg)
        assert "thief<span style='background:url(" in main_text(pg)
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / "hostile-names-verdict.png"))
        assert srv.seen == [], f"the dashboard fetched {srv.seen}"
        pg.close()
    finally:
        srv.server.shutdown()
