"""Speed figures of the embedded demo (run on a quiet machine; nothing here is a test).

    .venv/bin/python benchmarks/perf.py [--seed 0] [--skip-cold]

Prints: demo cold wall time (fresh artifact store, separate process), demo warm wall time (same
store, separate process), the time to verify one new suspect with the audit cached, and the batched
loss order against a batch-size-1 loop over the same model and data.
Targets (issue 2, 2 CPU cores): cold <= 180 s, warm <= 20 s, one new suspect <= 10 s, loss order >= 20x.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forensics.runtime import settings

ROOT = Path(__file__).resolve().parent.parent


def timed_demo(store: str, seed: int) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "forensics", "demo", "--quiet", "--seed", str(seed), "--store", store],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-cold", action="store_true",
                    help="reuse the artifact store ($FORENSICS_STORE or the default) instead of a fresh one")
    args = ap.parse_args()
    import torch

    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}")
    store = str(settings.current().store) if args.skip_cold else tempfile.mkdtemp(prefix="forensics-bench-")
    if not args.skip_cold:
        print(f"demo cold (fresh store, whole process):  {timed_demo(store, args.seed):7.1f} s   (target <= 180 s)")
    print(f"demo warm (same store, whole process):   {timed_demo(store, args.seed):7.1f} s   (target <= 20 s)")

    import numpy as np

    from forensics.demo.runner import run_demo
    from forensics.runtime.store import ArtifactStore

    res = run_demo(args.seed, store=ArtifactStore(store), suspects=())
    a, eng = res.audit, res.audit.engine
    # a new suspect: the victim with a perturbed head (new fingerprint, shared frozen prefix)
    new = a.victim.clone()
    with torch.no_grad():
        new.model.classifier.weight.add_(1e-3 * torch.randn_like(new.model.classifier.weight))
    new.refresh_fingerprint()
    t = time.perf_counter()
    v = a.verify(new, name="new suspect")
    print(f"verify one new suspect (audit cached):   {time.perf_counter() - t:7.2f} s   (target <= 10 s; "
          f"{len(a.queries)} queries, p = {v.p_value:.1e})")
    # another new suspect whose every weight differs (no cached activations at all)
    new2 = a.victim.clone()
    with torch.no_grad():
        for p in new2.model.parameters():
            p.mul_(1.0001)
    new2.refresh_fingerprint()
    t = time.perf_counter()
    a.verify(new2, name="new suspect, all weights new")
    print(f"  ... all weights new (prefix recomputed): {time.perf_counter() - t:6.2f} s")

    # loss order: (1) batched from images on a fresh store (prefix computed), (2) as in the pipeline, where
    # the victim's frozen prefix is the foundation's and its activations on D are already stored; against
    # (3) a batch-size-1 loop through the whole model (what the reference code does)
    from forensics.data.transforms import iter_batches
    from forensics.engine.engine import Engine
    from forensics.method.shadows import loss_order
    from forensics.models.splitting import split_model

    fresh = Engine(ArtifactStore(tempfile.mkdtemp(prefix="forensics-bench-lo-")), cache_blocks=1)
    t = time.perf_counter()
    batched = loss_order(fresh, a.victim, a.private)
    t_batched = time.perf_counter() - t
    warm = Engine(ArtifactStore(tempfile.mkdtemp(prefix="forensics-bench-lo2-")), cache_blocks=1)
    warm._memory = eng._memory  # the activations the pipeline already holds
    split_feats = eng.activations(a.victim, split_model(a.victim.model, 1), a.private)
    t = time.perf_counter()
    loss_order(warm, a.victim, a.private)
    t_pipe = time.perf_counter() - t
    model = a.victim.model.eval()
    n_loop = 1000
    sub = a.private.subset(np.arange(n_loop))
    t = time.perf_counter()
    losses = []
    with torch.inference_mode():
        for x, i in iter_batches(sub, a.victim.data_config, batch_size=1):
            losses.append(float(torch.nn.functional.cross_entropy(model(x), torch.from_numpy(sub.labels[i.numpy()]))))
    t_loop = (time.perf_counter() - t) * len(a.private) / n_loop
    assert np.allclose(batched[:n_loop], losses, rtol=1e-4, atol=1e-5)
    print(f"loss order on {len(a.private)} samples, batch-size-1 loop {t_loop:.1f} s (extrapolated from {n_loop}):")
    print(f"  batched from images (fresh store):       {t_batched:6.2f} s = {t_loop / t_batched:5.1f}x   "
          "(target >= 20x)")
    print(f"  batched, prefix activations stored:      {t_pipe:6.2f} s = {t_loop / t_pipe:5.1f}x   "
          f"({split_feats.shape[0]} cached activations, as in the demo pipeline)")


if __name__ == "__main__":
    main()
