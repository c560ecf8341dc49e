"""The PDF report: the HTML report printed by a headless Chromium (``FORENSICS_CHROMIUM`` or one on the PATH), with
a clear :class:`PdfRenderError` when there is no browser or it fails.

The page printed holds names from the other side of a dispute. They are escaped (:mod:`forensics.runtime.safe_text`) and
every page printed forbids every fetch (:data:`CSP`, put at its head); the printer is also cut off on its own: no
network (every host name resolves to nothing and every connection, loopback included, goes to a proxy that does not
exist), a fresh profile in a temporary folder that holds only the page, and Chromium's sandbox on unless the printer
runs as root (Chromium refuses its sandbox there)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ..errors import ForensicsError
from ..runtime import settings

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
#: what a report page may load: its own inline script (plotly.js) and styles, and data: images; nothing from the
#: network or the disk (a name that escaped escaping could not fetch or frame anything).  The HTML report carries it,
#: and :func:`render_pdf` puts it at the head of any page it prints.
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
       "font-src data:; connect-src 'none'; frame-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'")
log = logging.getLogger(__name__)
#: Chromium switches that leave the printer without network: no name resolves, and every request (loopback too)
#: goes through a proxy on the discard port, where nothing listens
NO_NETWORK = ("--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9",
              "--proxy-bypass-list=<-loopback>", "--disable-background-networking", "--disable-sync",
              "--disable-component-update", "--disable-domain-reliability", "--no-pings",
              "--disable-features=NetworkPrediction,OptimizationHints,MediaRouter")


class PdfRenderError(ForensicsError, RuntimeError):
    """The PDF report could not be printed: no browser found, or the browser failed."""


NO_BROWSER = ("install chromium: sudo apt-get install chromium, or set FORENSICS_CHROMIUM to a Chrome/Chromium "
              "binary; the HTML report has the same content")


def find_browser() -> str:
    """The Chromium/Chrome binary that prints the PDF: ``$FORENSICS_CHROMIUM``, else chromium, chromium-browser or
    google-chrome on the PATH; a :class:`PdfRenderError` that says what to do when there is none."""
    env = settings.current().chromium
    if env:
        found = shutil.which(env)
        if found is None:
            raise PdfRenderError(f"{settings.CHROMIUM}={env!r} is not an executable browser; {NO_BROWSER}")
        return found
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise PdfRenderError(f"no browser to print the PDF report with (looked for {', '.join(BROWSERS)}): {NO_BROWSER}")


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the browser's own child processes too
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def with_csp(page: str) -> str:
    """``page`` with :data:`CSP` as its first element (after a doctype): the browser then refuses every fetch and
    ``file://`` frame the page asks for, whatever it holds."""
    m = re.match(r"\s*<!doctype[^>]*>", page, re.IGNORECASE)
    at = m.end() if m else 0
    return f'{page[:at]}<meta http-equiv="Content-Security-Policy" content="{CSP}">{page[at:]}'


def _printed(out: Path) -> bool:
    return out.is_file() and out.stat().st_size > 0


def _print(exe: str, page: Path, out: Path, timeout: float, *, sandbox: bool) -> str:
    """One headless Chromium run printing ``page`` to ``out``; its stderr's text."""
    tmp = page.parent
    cmd = [exe, "--headless", *([] if sandbox else ["--no-sandbox"]), *NO_NETWORK, "--disable-gpu",
           "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
           "--hide-scrollbars", "--mute-audio", f"--user-data-dir={tmp / 'profile'}",
           # plotly draws the figures for a 900 px wide window; the print CSS scales them (zoom .78) to A4 width
           "--window-size=900,1200", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
           "--virtual-time-budget=20000", f"--print-to-pdf={out}", page.as_uri()]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp,
                                start_new_session=True, env=settings.child_environment(HOME=str(tmp)))
    except OSError as e:
        raise PdfRenderError(f"could not start {exe} ({e}); {NO_BROWSER}") from e
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        _kill(proc)
        raise PdfRenderError(f"{exe} did not print the PDF within {timeout:g} s; retry, or use the HTML "
                             "report (same content)") from e
    text = err.decode("utf-8", "replace").strip()
    failed = proc.returncode != 0 and not _printed(out)
    return (f"(exit status {proc.returncode})\n" if failed else "") + text[-1400:]


def render_pdf(html_text: str, *, timeout: float = 120.0, browser: str | None = None) -> bytes:
    """Print the HTML report to an A4 PDF with headless Chromium (the figures drawn by the inlined plotly.js).

    Raises :class:`PdfRenderError` when no browser is found (install chromium or set ``FORENSICS_CHROMIUM``), when
    it fails (its stderr's tail in the message) or when it takes longer than ``timeout`` seconds."""
    exe = browser or find_browser()
    with tempfile.TemporaryDirectory(prefix="holmes-pdf-") as tmp:
        page, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(with_csp(html_text), encoding="utf-8")
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        err = _print(exe, page, out, timeout, sandbox=not root)
        if not root and not _printed(out) and "sandbox" in err.lower():
            # a platform without the namespaces Chromium's sandbox needs (some containers): print without it
            log.warning("Chromium's sandbox is not available here; printing the PDF without it: %s", err[-300:])
            err = _print(exe, page, out, timeout, sandbox=False)
        tail = err
        if not _printed(out):
            what = "no file written" if not out.is_file() else "an empty file"
            raise PdfRenderError(f"{exe} could not print the PDF ({what}); its last messages:\n{tail}")
        data = out.read_bytes()
    if not data.startswith(b"%PDF"):
        raise PdfRenderError(f"{exe} wrote something that is not a PDF; its last messages:\n{tail}")
    return data
