"""What importing the package costs, and a warm demo against the bare import of what it stands on (run on a quiet
machine; nothing here is a test).

    .venv/bin/python benchmarks/imports.py [--rounds 7] [--store DIR] [--compare OTHER_CHECKOUT]

Prints: the wall time of ``import forensics`` and which optional libraries it loaded (none should be), then, in
interleaved rounds so that a busy or cooling machine weighs on every command alike, the median wall time of the bare
``import torch, timm, streamlit``, of a warm ``python -m forensics demo`` (every stage reused from the store at
``--store``, which the first, untimed run fills) and, with ``--compare``, of the same demo run from another checkout
of the package (``PYTHONPATH``), e.g. a worktree of an earlier commit.  Target (issue 16): warm demo <= 1.2x the bare
import.  Python writes byte-code caches for these runs, as it does for any user (``PYTHONDONTWRITEBYTECODE``, which
some sandboxes set, is unset in the children: the package is installed editable, so pip never compiled its modules,
and without caches every run would compile them again).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("scipy.stats", "sklearn", "pandas", "pyarrow", "plotly", "timm", "transformers", "datasets", "ray",
         "streamlit", "PIL")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **extra}


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", help="the artifact store of the warm demo (default: a new one, filled first)")
    ap.add_argument("--compare", type=Path, help="another checkout whose forensics/ to time beside this one")
    args = ap.parse_args()
    py = sys.executable
    store = args.store or tempfile.mkdtemp(prefix="forensics-imports-")
    probe = f"import sys, forensics; print([m for m in {HEAVY!r} if m in sys.modules])"
    loaded = subprocess.run([py, "-c", probe], cwd=ROOT, env=_env(), capture_output=True, text=True, check=True)
    t_import = statistics.median(_timed([py, "-c", "import forensics"], _env()) for _ in range(args.rounds))
    print(f"import forensics: {t_import:.2f} s (median of {args.rounds}); optional libraries it loaded: "
          f"{loaded.stdout.strip()}")
    demo = [py, "-m", "forensics", "demo", "--quiet", "--seed", str(args.seed), "--store", store]
    commands = {"bare import of torch, timm, streamlit": ([py, "-c", "import torch, timm, streamlit"], _env()),
                "warm demo": (demo, _env())}
    if args.compare:
        commands["warm demo, --compare checkout"] = (demo, _env(PYTHONPATH=str(args.compare.resolve())))
    for name, (cmd, env) in commands.items():  # fill the store, write the byte-code caches: untimed
        if name.startswith("warm"):
            _timed(cmd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.rounds):
        for name, (cmd, env) in commands.items():
            times[name].append(_timed(cmd, env))
    base = statistics.median(times["bare import of torch, timm, streamlit"])
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:38s} median {med:6.2f} s = {med / base:4.2f}x   (runs: {', '.join(f'{t:.1f}' for t in ts)})")
    print("target: warm demo <= 1.20x the bare import")


if __name__ == "__main__":
    main()
