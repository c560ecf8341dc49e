"""A marketplace scan: 20 suspects against the demo's audit, in one process and as Ray tasks with 1, 2, 4 workers.

    .venv/bin/python benchmarks/scan.py [--full] [--workers 1 2 4] [--store DIR] [--json PATH]

The 20 suspects: the demo's six (four thefts, two innocent models) by their ``demo:`` ids, the same six saved as
``local-dir:`` folders under other names (exact copies), the same six as ``.safetensors`` files re-saved in fp16 (a
thief's re-upload: other weights, same behaviour), and two that cannot load (a missing folder, a corrupt file).
Every run must give each copy the verdict of its original and fail the two broken ones; the table says whether it
did.  Each run starts from the store as the demo left it (the copies' cached outputs are removed between runs), so every
run computes the new suspects' outputs.  Ray runs start a local Ray with as many CPUs as workers (the start is
part of the wall time; so is opening the audit once in each worker).  On a GPU machine give --workers up to the
number of GPUs: each task then takes one GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU"


def build_market(audit, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The 20 suspect sources and, for each, the verdict it must get (None: it must fail)."""
    from safetensors.torch import save_file

    from forensics.demo.assets import DEMO_SUSPECTS
    from forensics.models import save_model

    sources, expected = [], {}
    for i, s in enumerate(DEMO_SUSPECTS):
        original = f"demo:{s.key}"
        verdict = audit.verify(original).verdict
        model = audit.load_suspect(original)
        save_model(model, folder / f"vendor{i}-classifier-v{i + 2}")
        weights = folder / f"upload-{1000 + i}.safetensors"
        save_file({k: v.detach().half().float().contiguous() for k, v in model.model.state_dict().items()},
                  str(weights))
        for src in (original, f"local-dir:{folder / f'vendor{i}-classifier-v{i + 2}'}", str(weights)):
            sources.append(src)
            expected[src] = verdict
    (folder / "corrupt.safetensors").write_bytes(b"this is not a weights file")
    for src in (f"local-dir:{folder / 'deleted-repo'}", str(folder / "corrupt.safetensors")):
        sources.append(src)
        expected[src] = None
    return sources, expected


CACHED = ("logits", "activations")  # the stages a suspect's verification stores


def snapshot(store_root: Path) -> set[Path]:
    return {p for stage in CACHED if (store_root / stage).is_dir() for p in (store_root / stage).iterdir()}


def reset(store_root: Path, keep: set[Path]) -> None:
    """Remove what the suspects' verifications stored since ``keep`` was taken, so that the next run computes it."""
    for p in snapshot(store_root) - keep:
        shutil.rmtree(p, ignore_errors=True)


def check(rows, expected) -> tuple[int, int, bool]:
    got = {r.suspect: (r.verdict if r.status != "failed" else None) for r in rows}
    return (sum(r.status == "verified" for r in rows), sum(r.status == "failed" for r in rows), got == expected)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="the full demo (default: the reduced one)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--store", type=Path, help="an artifact store holding the demo (default: a fresh one)")
    ap.add_argument("--json", type=Path, help="write the table as JSON")
    args = ap.parse_args()
    import ray

    from forensics import ArtifactStore, run_demo
    from forensics.cases.scan import scan, scan_ray

    root = args.store or Path(tempfile.mkdtemp(prefix="scan-bench-store-"))
    store = ArtifactStore(root)
    print(f"machine: {machine()}; torch {torch.__version__}, ray {ray.__version__}, "
          f"FORENSICS_CPU_THREADS={os.environ.get('FORENSICS_CPU_THREADS', '2 (default)')}")
    t = time.perf_counter()
    audit = run_demo(0, store=store, quick=not args.full).audit
    print(f"demo audit ready in {time.perf_counter() - t:.1f} s ({'full' if args.full else 'reduced'} demo)")
    keep = snapshot(root)  # the audit's and the demo suspects' outputs
    market = Path(tempfile.mkdtemp(prefix="scan-bench-market-"))
    sources, expected = build_market(audit, market)
    spec, qfp = audit.spec.to_dict(), audit.queries.fingerprint
    results = []

    def record(mode, workers, seconds, rows):
        verified, failed, right = check(rows, expected)
        results.append({"mode": mode, "workers": workers, "seconds": round(seconds, 1), "suspects": len(rows),
                        "verifying": round(sum(r.seconds for r in rows), 1),
                        "per_minute": round(len(rows) / seconds * 60, 1), "verified": verified, "failed": failed,
                        "verdicts_as_expected": right})
        print(f"  {mode:10s} workers={workers}: {seconds:6.1f} s, {verified} verified, {failed} failed, verdicts "
              f"{'as expected' if right else 'NOT as expected'}", flush=True)

    reset(root, keep)
    t = time.perf_counter()
    rows = list(scan(audit, sources, market / "in-process.jsonl"))
    record("in process", 1, time.perf_counter() - t, rows)
    for w in args.workers:
        reset(root, keep)
        t = time.perf_counter()
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            rows = list(scan_ray(spec, qfp, sources, market / f"ray-{w}.jsonl", store_root=root.resolve(),
                                 precision=audit.engine.precision,
                                 address=None, workers=w))
        finally:
            ray.shutdown()
        record("Ray", w, time.perf_counter() - t, rows)

    print(f"\n20 suspects ({len(sources)}), {'full' if args.full else 'reduced'} demo, {machine()}\n")
    print("| run | workers | wall time | of which verifying (sum over suspects) | suspects / min | verified | failed "
          "| verdicts as expected |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(f"| {r['mode']} | {r['workers']} | {r['seconds']} s | {r['verifying']} s | {r['per_minute']} | "
              f"{r['verified']} | "
              f"{r['failed']} | {'yes' if r['verdicts_as_expected'] else 'NO'} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=1))
    if not all(r["verdicts_as_expected"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
