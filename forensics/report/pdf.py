"""The PDF report: the HTML report printed by a headless Chromium (``FORENSICS_CHROMIUM`` or one on the PATH), with
a clear :class:`PdfRenderError` when there is no browser or it fails."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from ..errors import ForensicsError
from ..runtime import settings

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


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


def render_pdf(html_text: str, *, timeout: float = 120.0, browser: str | None = None) -> bytes:
    """Print the HTML report to an A4 PDF with headless Chromium (the figures drawn by the inlined plotly.js).

    Raises :class:`PdfRenderError` when no browser is found (install chromium or set ``FORENSICS_CHROMIUM``), when
    it fails (its stderr's tail in the message) or when it takes longer than ``timeout`` seconds."""
    exe = browser or find_browser()
    with tempfile.TemporaryDirectory(prefix="holmes-pdf-") as tmp:
        page, out = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        page.write_text(html_text, encoding="utf-8")
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
               "--hide-scrollbars", "--mute-audio", f"--user-data-dir={Path(tmp) / 'profile'}",
               # plotly draws the figures for a 900 px wide window; the print CSS scales them (zoom .78) to A4 width
               "--window-size=900,1200", "--no-pdf-header-footer", "--run-all-compositor-stages-before-draw",
               "--virtual-time-budget=20000", f"--print-to-pdf={out}", page.as_uri()]
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp,
                                    start_new_session=True, env=settings.child_environment(HOME=tmp))
        except OSError as e:
            raise PdfRenderError(f"could not start {exe} ({e}); {NO_BROWSER}") from e
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as e:
            _kill(proc)
            raise PdfRenderError(f"{exe} did not print the PDF within {timeout:g} s; retry, or use the HTML "
                                 "report (same content)") from e
        tail = err.decode("utf-8", "replace").strip()[-1500:]
        if proc.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            raise PdfRenderError(f"{exe} could not print the PDF (exit status {proc.returncode}"
                                 f"{', no file written' if not out.is_file() else ''}); its last messages:\n{tail}")
        data = out.read_bytes()
    if not data.startswith(b"%PDF"):
        raise PdfRenderError(f"{exe} wrote something that is not a PDF; its last messages:\n{tail}")
    return data
