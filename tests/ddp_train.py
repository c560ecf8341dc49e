"""Run under torchrun by tests/test_distributed.py (and alone, for the one-process reference): train one small shadow
through the artifact store and write what this worker ended with.

    torchrun --nproc_per_node 2 tests/ddp_train.py STORE OUT [--arch A] [--full] [--kill-epoch E --kill-rank R]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from helpers import make_loaded, toy_images

from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.engine.stored import train_stored
from forensics.runtime import distributed
from forensics.runtime.store import ArtifactStore


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("store")
    ap.add_argument("out")
    ap.add_argument("--arch", default="test_efficientnet_gn")
    ap.add_argument("--full", action="store_true", help="full fine-tuning (default: the last block + head)")
    ap.add_argument("--kill-epoch", type=int, help="SIGKILL this worker when this epoch starts (first attempt only)")
    ap.add_argument("--kill-rank", type=int, default=1)
    args = ap.parse_args()

    engine = Engine(ArtifactStore(args.store), device="cpu")
    w = distributed.world()
    start = make_loaded(args.arch, seed=3, **({"img_size": 32} if "vit" in args.arch else {}))
    images = toy_images(90, seed=1)
    cfg = TrainConfig(epochs=4, batch_size=16, lr=5e-3, seed=0, trainable_blocks=None if args.full else 1)

    def progress(p):
        first_attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
        if args.kill_epoch and p.epoch == args.kill_epoch and w.rank == args.kill_rank and first_attempt:
            os.kill(os.getpid(), signal.SIGKILL)

    model, history = train_stored(engine, "benign_shadow", start, images, images.labels, cfg, progress=progress)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.model.state_dict(), out / f"weights-{w.rank}.pt")
    (out / f"rank-{w.rank}.json").write_text(json.dumps({
        "rank": w.rank, "world": w.size, "fingerprint": model.fingerprint, "history": history,
        "restarts": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")), "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
