"""Proofs of concept against the product's own functions, one per weakness closed (issue 19): names from the other
side of a dispute reach no network and act on no surface.  Each network check has a loopback HTTP server that must
see no request, and a control that shows the same page does make the request where the protection is absent."""
from __future__ import annotations

import dataclasses
import http.server
import subprocess
import threading
from pathlib import Path

import pytest
from test_report import need_pdf_tools, pdf_text, record, suspect

from forensics.report.html import CSP, render_html
from forensics.report.pdf import find_browser, render_pdf
from forensics.runtime.safe_text import MAX_CHARS, html_text, markdown_text, plot_text, terminal_text


class Loopback:
    """An HTTP server on 127.0.0.1 that records every path asked of it."""

    def __init__(self) -> None:
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                seen.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def payloads(self, tag: str) -> list[str]:
        """Names that fetch ``/<tag>-...`` where they are rendered as markup (plotly, HTML, CSS, markdown)."""
        u = self.url
        return [f"thief<span style='background:url({u}/{tag}-css)'>x</span>",
                f"<img src={u}/{tag}-img>", f"![x]({u}/{tag}-md)", f"<iframe src={u}/{tag}-frame></iframe>",
                f"x</style><link rel=stylesheet href={u}/{tag}-link>", "<iframe src=file:///etc/hostname></iframe>"]


@pytest.fixture
def loopback():
    srv = Loopback()
    yield srv
    srv.server.shutdown()


def _chromium_dump(page: Path) -> str:
    """What a user's browser does with a page: a plain headless Chromium (network on) loading it."""
    out = subprocess.run([find_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    return out.stdout


def test_each_surface_shows_a_payload_literally():
    name = "thief<span style='x'>\x1b[31m![i](http://h/x)%{y}\u202e"
    assert plot_text(name) == "thief&lt;span style='x'&gt;\x1b[31m![i](http://h/x)%&#123;y}\u202e"
    assert html_text(name).startswith("thief&lt;span style=&#x27;x&#x27;&gt;")
    md = markdown_text(name + "\n# heading")
    # a bare URL is not linked either (a zero-width space after "http:")
    assert "\\!\\[i\\]\\(http\\:\u200b//h/x\\)" in md and "\\<span" in md and "\n" not in md and "\\# heading" in md
    assert "\x1b" not in terminal_text(name) and "\\x1b[31m" in terminal_text(name)
    assert "\u202e" not in terminal_text(name) and "\\u202e" in terminal_text(name)
    assert terminal_text("a\nb") == "a\\x0ab" and terminal_text("a\nb", lines=True) == "a\nb"
    assert len(plot_text("x" * 10 * MAX_CHARS)) == MAX_CHARS


def test_names_in_the_cli_table_cannot_drive_the_terminal(capsys):
    from forensics.cli.common import print_table

    row = suspect("thief\x1b]0;owned\x07\x1b[2J\rinnocent", 0.5, 0.1, 0.5)
    print_table([row], 0.01)
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out and "\\x1b]0;owned" in out


def test_the_pdf_printer_has_no_network_and_reads_no_other_file(loopback):
    """Even a page with live markup (no escaping, no CSP) fetches nothing when the printer prints it."""
    pypdf = need_pdf_tools()
    page = "<p>report</p>" + "".join(loopback.payloads("pdf")).replace("![x]", "")
    data = render_pdf(page)
    assert loopback.seen == [], f"the printer fetched {loopback.seen}"
    host = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").is_file() else None
    text = pdf_text(pypdf, data)[1]
    assert "report" in text and (not host or host not in text)


def test_control_a_plain_browser_does_fetch_the_payloads(loopback, tmp_path):
    """The control: the same markup in a browser without the report's protections is fetched (the server works)."""
    need_pdf_tools()
    page = tmp_path / "raw.html"
    page.write_text("<p>raw</p>" + "".join(loopback.payloads("raw")))
    _chromium_dump(page)
    assert any(p.startswith("/raw-") for p in loopback.seen), loopback.seen


def test_the_html_report_forbids_every_fetch(loopback, tmp_path):
    """The report's CSP: a page in the report's shell, with live markup added after it, fetches nothing either."""
    need_pdf_tools()
    html = render_html(record())
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in html
    page = tmp_path / "report.html"
    page.write_text(html.replace("</body>", "".join(loopback.payloads("csp")) + "</body>"))
    _chromium_dump(page)
    assert loopback.seen == [], f"the report fetched {loopback.seen}"


@pytest.mark.slow
def test_hostile_names_in_the_report_and_its_figures_fetch_nothing(quick_demo, loopback, tmp_path):
    """The issue's proof of concept: suspects named to fetch a URL, in the record, the figures (plotly renders
    <span style>), the HTML report opened in a browser and its PDF.  Nothing reaches the loopback server, and the
    names read literally."""
    pypdf = need_pdf_tools()
    from forensics.report.html import audit_figures
    from forensics.report.record import build_report

    a = quick_demo.audit
    names = loopback.payloads("name")[:4]
    verdicts = [dataclasses.replace(r.verdict, suspect=n) for r, n in zip(quick_demo.suspects, names, strict=False)]
    rows = [(v.suspect, None, v) for v in verdicts]
    figures = audit_figures(a, verdicts)
    for f in figures:  # no name reaches a figure as markup
        assert "<span style='background" not in f.to_json() and "<img" not in f.to_json()
    html = render_html(build_report(a, rows, info={"case_name": names[0]}), figures)
    page = tmp_path / "report.html"
    page.write_text(html)
    dom = _chromium_dump(page)
    assert "plotly" in dom and loopback.seen == [], f"the report fetched {loopback.seen}"
    text = pdf_text(pypdf, render_pdf(html))[1]
    assert loopback.seen == [], f"the PDF printer fetched {loopback.seen}"
    assert "thief<span style='background:url(" in text  # the name, literally


def test_an_error_that_quotes_a_name_is_shown_literally_in_the_dashboard():
    """An error message quotes the user's (or the other side's) file name: markdown in it must not become a link or
    an image request."""
    from streamlit.testing.v1 import AppTest

    def page():
        from dashboard.widgets import show_error
        from forensics.errors import DataSourceError

        show_error(DataSourceError("'![x](http://127.0.0.1:9/x) <img src=y>.zip' holds no config.json"))

    at = AppTest.from_function(page).run()
    (err,) = at.error
    assert "\\!\\[x\\]\\(http\\:\u200b//127.0.0.1\\:9/x\\)" in err.value and "\\<img src\\=y\\>" in err.value


def _png_declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares ``width`` x ``height`` pixels (a decompression bomb's header)."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # the chunk's CRC over its type and data
    return bytes(data)


def test_an_image_declaring_too_many_pixels_is_refused_before_it_is_decoded(tmp_path):
    from forensics.data.images import load_image_folder
    from forensics.errors import DataSourceError

    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "ok.png").write_bytes(_png_declaring(8, 8))
    (tmp_path / "a" / "bomb.png").write_bytes(_png_declaring(13_000, 13_000))
    images = load_image_folder(tmp_path)
    bomb = next(i for i, p in enumerate(images.paths) if p.name == "bomb.png")
    with pytest.raises(DataSourceError, match=r"bomb.png is 13000 x 13000 pixels \(169 megapixels; at most 40"):
        images.pil(bomb)
    # a header past PIL's own bomb limit is the same clear error, not PIL's exception
    (tmp_path / "a" / "bomb.png").write_bytes(_png_declaring(60_000, 60_000))
    with pytest.raises(DataSourceError, match=r"bomb.png declares far more than 40 megapixels \(Image size \(36000"):
        images.pil(bomb)


def test_a_zip_over_the_configured_unpacked_limit_is_refused(tmp_path, monkeypatch):
    import io
    import zipfile

    from forensics.data.archives import extract_zip
    from forensics.errors import DataSourceError

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for c in ("a", "b"):
            zf.writestr(f"data/{c}/x.png", b"\0" * (3 * 1024 ** 2))  # 6 MB unpacked, a few kB packed
    assert len(buf.getvalue()) < 100_000
    monkeypatch.setenv("FORENSICS_MAX_UNPACKED_MB", "5")
    with pytest.raises(DataSourceError, match=r"unpacks to 6 MB \(at most 5 MB, FORENSICS_MAX_UNPACKED_MB\)"):
        extract_zip(buf.getvalue(), tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before anything was written
    monkeypatch.setenv("FORENSICS_MAX_UNPACKED_MB", "7")
    root = extract_zip(buf.getvalue(), tmp_path / "out")
    assert sorted(p.name for p in root.iterdir()) == ["a", "b"]


def test_a_record_asking_for_a_year_of_training_is_refused():
    """A record is another party's file: its recipe is checked as strictly as the dashboard's form, before a server
    thread trains anything on reopen."""
    from forensics.audit.spec import AuditSpec
    from forensics.demo import demo_spec
    from forensics.errors import ConfigError

    d = demo_spec(0, quick=True).to_dict()
    d["config"]["train"]["epochs"] = 10 ** 9
    with pytest.raises(ConfigError, match=r"'epochs' parameter of TrainConfig must be an integer in \[1, 1000\]"):
        AuditSpec.from_dict(d)
    d = demo_spec(0, quick=True).to_dict()
    d["config"]["paper_draws"] = 10 ** 9
    with pytest.raises(ConfigError, match="paper_draws"):
        AuditSpec.from_dict(d)


def test_a_config_asking_for_huge_inputs_is_refused(tiny_model):
    """A suspect's config may ask for any input size (timm's pretrained_cfg or model_args, a transformers
    preprocessor); 8,000 px inputs would need ~25 GB a batch.  Both ways into a model's preprocessing are bounded."""
    from forensics.errors import ModelSourceError
    from forensics.models.hf_transformers import data_config_from_processor
    from forensics.models.loaded import data_config_for

    model = tiny_model()
    assert data_config_for(model)["input_size"][1] <= 1024
    model.pretrained_cfg = {**model.pretrained_cfg, "input_size": (3, 8000, 8000)}
    with pytest.raises(ModelSourceError, match=r"asks for 8000 x 8000 px inputs.*8 to 1024 px a side"):
        data_config_for(model)
    assert data_config_for(model, 224)["input_size"] == (3, 224, 224)  # the user's own input size wins
    with pytest.raises(ModelSourceError, match="asks for 8000 x 8000 px inputs"):
        data_config_from_processor({"size": {"height": 8000, "width": 8000}}, source="suspect")


def test_names_in_markdown_that_allows_html_are_entities():
    """The dashboard's chips and spinners are markdown with HTML allowed: a backslash would show there, so every HTML
    and markdown character becomes a numeric entity (literal text in both)."""
    from forensics.runtime.safe_text import markdown_html_text

    out = markdown_html_text("![x](http://h/x) <b onmouseover='y'>\n# z")
    assert not any(c in out for c in "<>[]()!'\n") and out.startswith("&#33;&#91;x&#93;&#40;http")
    import html as html_lib

    assert html_lib.unescape(out) == "![x](http:\u200b//h/x) <b onmouseover='y'> # z"  # no bare link either
