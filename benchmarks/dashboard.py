"""What the dashboard itself costs: a cold demo build through the dashboard against the CLI's `demo`.

    .venv/bin/python benchmarks/dashboard.py [--quick] [--order cli-first|dashboard-first]

Runs, one after the other on this machine, each in a fresh artifact store:
  1. `holmes-forensics demo --quiet` (a separate process), timed from start to exit;
  2. `streamlit run app.py` driven by Debian's chromium (Playwright): one click on "Load the demo" (which loads
     the demo, starts its build, shows its live progress and ends on 4 · Verdict), timed from the click until the
     verdict's headline shows, with the page left open on the live progress view the whole time (what polls and
     re-renders while it trains).
Prints both wall times and their ratio.  Targets: dashboard <= 1.2x the CLI (issue 8); the first verdict of a cold
demo <= 45 s on 2 CPU cores in both (issue 18).
`--quick` uses the reduced demo (FORENSICS_DEMO_QUICK=1) for a fast check; the target is for the full demo.
Needs chromium and playwright (`bash scripts/setup.sh --dev`).  Not a test: run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cli_demo(store: str, env: dict[str, str], quick: bool) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "forensics", "demo", "--quiet", "--store", store,
                    *(["--quick"] if quick else [])], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dashboard_demo(store: str, env: dict[str, str], timeout_s: float) -> tuple[float, str]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--browser.gatherUsageStats", "false"], cwd=ROOT, env={**env, "FORENSICS_STORE": store},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"),
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            pg = browser.new_page(viewport={"width": 1440, "height": 1200})
            pg.goto(url)
            load = pg.get_by_role("button", name="Load the demo")
            load.wait_for(timeout=120_000)
            t = time.perf_counter()
            load.click()  # one click: the build starts, and the page ends on 4 · Verdict
            pg.get_by_text(re.compile(r"suspects? shows? evidence of derivation|no suspect shows")).first.wait_for(
                timeout=timeout_s * 1000)
            seconds = time.perf_counter() - t
            status = pg.url
            browser.close()
        return seconds, status
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the reduced demo (a fast check, not the target)")
    ap.add_argument("--order", choices=["cli-first", "dashboard-first"], default="cli-first")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds the dashboard build may take")
    args = ap.parse_args()
    import torch

    env = dict(os.environ)
    env.pop("FORENSICS_DEMO_QUICK", None)
    if args.quick:
        env["FORENSICS_DEMO_QUICK"] = "1"
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}, "
          f"demo: {'reduced' if args.quick else 'full'}", flush=True)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dash-") as tmp:
        for what in (["cli", "dashboard"] if args.order == "cli-first" else ["dashboard", "cli"]):
            store = str(Path(tmp) / what)
            if what == "cli":
                results["cli"] = cli_demo(store, env, args.quick)
                print(f"CLI `holmes-forensics demo`, cold: {results['cli']:.1f} s", flush=True)
            else:
                results["dashboard"], status = dashboard_demo(store, env, args.timeout)
                print(f"dashboard, one click on 'Load the demo' to the verdict, cold: {results['dashboard']:.1f} s"
                      f"  [{status}]", flush=True)
    ratio = results["dashboard"] / results["cli"]
    print(f"ratio dashboard / CLI: {ratio:.2f} (target <= 1.2: {'met' if ratio <= 1.2 else 'NOT met'})")
    if not args.quick:
        for what, seconds in results.items():
            print(f"first verdict, {what}: {seconds:.1f} s (target <= 45 s: {'met' if seconds <= 45 else 'NOT met'})")


if __name__ == "__main__":
    main()
