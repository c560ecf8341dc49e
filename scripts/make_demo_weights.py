"""Make the full demo's shipped runs (forensics/demo/data/shipped/): its victim and trained suspects.

    FORENSICS_DEMO_SHIPPED=0 python scripts/make_demo_weights.py [--store DIR]

Runs the full demo (seed 0) with shipping off, in ``--store`` (an existing store where the demo ran is reused: no
training then), records every run of :data:`forensics.demo.shipped.STAGES` that the demo asks for, and writes each
as the tensors that differ from its start model (safetensors) with the trained model's fingerprint and history to
``manifest.json``.  Run it on the CPU (fp32: the keys carry the precision) after any change to the demo's data,
recipes, attacks or the engine's cache keys; ``tests/test_demo_shipped.py`` fails while the files are stale.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", help="artifact store to build in or reuse (default: a fresh temporary one)")
    args = ap.parse_args()
    if os.environ.get("FORENSICS_DEMO_SHIPPED") != "0":
        sys.exit("set FORENSICS_DEMO_SHIPPED=0: the runs must be trained here, not read from the old files")
    from safetensors.torch import save_file

    from forensics.demo import run_demo, shipped
    from forensics.models import load_saved
    from forensics.runtime.store import ArtifactStore, artifact_key, read_json

    asked: list[tuple[str, str, str]] = []  # (stage, key, start model's key) of every run the demo fetches
    fetch = ArtifactStore.fetch

    def spy(self, stage, config, inputs, compute):
        key = artifact_key(stage, config, inputs)
        if stage in shipped.STAGES and all(k != key for _, k, _ in asked):
            asked.append((stage, key, inputs["start"]))
        return fetch(self, stage, config, inputs, compute)

    ArtifactStore.fetch = spy  # type: ignore[method-assign]
    store = ArtifactStore(args.store or tempfile.mkdtemp(prefix="demo-weights-"))
    result = run_demo(0, store=store, device="cpu")
    starts = {m.key: m for m in (result.audit.foundation, result.audit.victim)}
    out = shipped.SHIPPED_DIR
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.safetensors"):
        old.unlink()
    runs = []
    for stage, key, start_key in asked:
        start = starts[start_key]
        trained = load_saved(store.path(stage, key), source=f"store:{stage}/{key}")
        base = start.model.state_dict()
        state = {n: t.detach().clone().contiguous() for n, t in trained.model.state_dict().items()
                 if not torch.equal(t, base[n])}
        name = f"{stage}-{key}.safetensors"
        save_file(state, out / name)
        history = read_json(store.path(stage, key) / "history.json")
        runs.append({"stage": stage, "key": key, "file": name, "fingerprint": trained.fingerprint,
                     "start": start.key, "tensors": len(state), "history": history})
        print(f"{stage}/{key}: {len(state)} tensors, {sum(t.numel() for t in state.values()):,} values")
    (out / shipped.MANIFEST).write_text(json.dumps({"demo_seed": 0, "runs": runs}, indent=1) + "\n")
    print("suspects:", ", ".join(f"{r.suspect.name} p={r.verdict.p_value:.2g}" for r in result.suspects))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
