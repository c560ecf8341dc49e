"""Throughput and model FLOP utilisation (MFU) of the product's engine on a timm ViT-B/16 at 224 px (issue 10).

    .venv/bin/python benchmarks/gpu.py [--device auto|cuda|cpu] [--batch-sizes 64 128 256 512] [--warmup 3]
        [--steps 10] [--trainable-blocks 1] [--peak-tflops T] [--json PATH] [--store-dir DIR]
        [--audit [--audit-images N] [--audit-heldout N] [--audit-suspects 10] [--audit-suspect-kind tail|all]]
        [--ray-scan [WORKERS ...]]

Runs anywhere: on a machine without a GPU it says so and measures the CPU (default batches 8 and 16, one warm-up
step and two timed steps: a few minutes on 2 cores).  Every figure goes through the product's code:

1. shadow fine-tuning through ``Engine.train`` (the one training loop, ``forensics.engine.loop.fit``), full and
   partial (the last N blocks on cached prefix activations); only the steady-state steps are timed (from the
   loop's ``TrainProgress`` events, which come after the step's loss is on the host); the one-off prefix
   caching (``Engine.activations``) is timed on its own;
2. suspect logits through ``Engine.logits``: the whole forward pass (``cache_blocks=None``) and the engine's
   default (prefix activations computed and stored, then the tail);
3. FLOPs from ``torch.utils.flop_counter.FlopCounterMode`` on one forward (+ backward) pass on the meta device
   (attention as explicit matrix products, so that it is counted); MFU = achieved FLOP/s / the device's dense
   bf16 peak (table below, or ``--peak-tflops``);
4. ``--audit``: a complete audit (loss order, poisoned and benign shadows, membership reference, meta-classifier,
   query set) built with ``forensics.audit.build_audit`` on synthetic data and a random-init ViT-B/16, then
   ``Audit.verify`` of N suspects, with the wall time of every stage;
5. ``--ray-scan``: the Ray scan scaling table of ``benchmarks/scan.py`` (20 suspects, 1 / 2 / 4 workers, one GPU
   each on a GPU machine).

On CUDA the engine trains and infers with bf16 autocast and channels_last; on the CPU in fp32 with the engine's
pinned thread count (FORENSICS_CPU_THREADS, default 2).  Issue 10's targets on one modern GPU: >= 40 % MFU for
full fine-tuning of ViT-B/16, a complete ViT-B/16 audit in <= 10 minutes.  The model is randomly initialised
(``pretrained=False``: the same FLOPs) and the images are random RGB arrays (``--image-px``, default 224) that
the engine's eval transform resizes and crops as it would real ones.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from forensics.data.images import ImageSet  # noqa: E402
from forensics.data.transforms import EvalTransform, TransformedImages  # noqa: E402
from forensics.engine.engine import Engine, resolve_device  # noqa: E402
from forensics.engine.recipe import TrainConfig, TrainProgress  # noqa: E402
from forensics.models import LoadedModel, fresh_model  # noqa: E402
from forensics.models.splitting import split_model  # noqa: E402
from forensics.runtime import settings  # noqa: E402
from forensics.runtime.progress import StageProgress  # noqa: E402
from forensics.runtime.store import ArtifactStore  # noqa: E402

ARCH = "vit_base_patch16_224"
NUM_CLASSES = 10
GPU_BATCHES, GPU_WARMUP, GPU_STEPS = (64, 128, 256, 512), 3, 10
CPU_BATCHES, CPU_WARMUP, CPU_STEPS = (8, 16), 1, 2

# Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, from NVIDIA's product datasheets ("BF16 Tensor Core", which
# the datasheets quote *with* sparsity: halved here) and architecture whitepapers (Ada, Ampere GA102).  Matched
# against torch.cuda.get_device_name() in this order (first match wins); --peak-tflops overrides.
PEAK_BF16_TFLOPS: list[tuple[str, float, str]] = [
    (r"\bgh200\b", 989.4, "GH200 (H100 SXM compute), NVIDIA GH200 datasheet"),
    (r"\bh200\b.*\bnvl\b", 835.5, "H200 NVL, NVIDIA H200 datasheet (1,671 with sparsity)"),
    (r"\bh200\b", 989.4, "H200 SXM, NVIDIA H200 datasheet (1,979 with sparsity)"),
    (r"\bh100\b.*\bnvl\b", 835.5, "H100 NVL, NVIDIA H100 datasheet (1,671 with sparsity)"),
    (r"\bh100\b.*\bpcie\b", 756.5, "H100 PCIe, NVIDIA H100 datasheet (1,513 with sparsity)"),
    (r"\bh100\b", 989.4, "H100 SXM, NVIDIA H100 datasheet (1,979 with sparsity)"),
    (r"\bb200\b", 2250.0, "B200 (HGX B200 per GPU), NVIDIA datasheet (4,500 with sparsity)"),
    (r"\ba100\b", 312.0, "A100, NVIDIA A100 datasheet (624 with sparsity)"),
    (r"\bl40s\b", 362.05, "L40S, NVIDIA L40S datasheet (733 with sparsity)"),
    (r"\bl40\b", 181.05, "L40, NVIDIA L40 datasheet (362.1 with sparsity)"),
    (r"\bl4\b", 121.0, "L4, NVIDIA L4 datasheet (242 with sparsity)"),
    (r"\ba10g\b", 125.0, "A10G, taken as the A10's (NVIDIA publishes no A10G figure; check with --peak-tflops)"),
    (r"\ba10\b", 125.0, "A10, NVIDIA A10 datasheet (250 with sparsity)"),
    (r"\brtx 4090\b", 165.2, "RTX 4090, NVIDIA Ada whitepaper (bf16 with fp32 accumulate)"),
    (r"\brtx a6000\b", 154.8, "RTX A6000, NVIDIA Ampere GA102 whitepaper (bf16 with fp32 accumulate)"),
]


# -- the machine ---------------------------------------------------------------------------------------------
def peak_for(device_name: str) -> tuple[float | None, str]:
    """(dense bf16 peak in TFLOP/s, where the figure comes from) for a GPU name; (None, ...) when unknown."""
    name = device_name.lower()
    for pattern, tflops, source in PEAK_BF16_TFLOPS:
        if re.search(pattern, name):
            return tflops, source
    return None, f"peak unknown for {device_name!r}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device, peak_override: float | None = None) -> dict[str, Any]:
    """What the figures were measured on, and the peak that MFU divides by (None: unknown)."""
    import timm

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info: dict[str, Any] = {"device": device.type, "cpu": cpu_model(), "cpu_cores": cores,
                            "torch": torch.__version__, "timm": timm.__version__, "python": platform.python_version()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        peak, source = peak_for(props.name)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    cuda=torch.version.cuda, precision="bf16 autocast, channels_last")
    else:
        threads = settings.current().cpu_threads
        info.update(gpu=None, torch_threads=torch.get_num_threads(),
                    engine_threads=threads if threads is not None else "auto",
                    precision="fp32")
        peak, source = None, "n/a (peak unknown)"
    if peak_override is not None:
        peak, source = peak_override, "--peak-tflops"
    info.update(peak_tflops=peak, peak_source=source)
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    if info["device"] == "cuda":
        lines = [f"machine: {info['gpu']} ({info['gpu_memory_gib']} GiB), CUDA {info['cuda']}, host CPU "
                 f"{info['cpu']} x {info['cpu_cores']} cores"]
    else:
        lines = ["machine: NO GPU - these are CPU figures (the engine's fp32 CPU path), not GPU ones",
                 f"CPU: {info['cpu']}, {info['cpu_cores']} cores available, torch threads {info['torch_threads']} "
                 f"(the engine pins FORENSICS_CPU_THREADS = {info['engine_threads']})"]
    lines.append(f"torch {info['torch']}, timm {info['timm']}, Python {info['python']}; precision: {info['precision']}")
    peak = info["peak_tflops"]
    lines.append(f"peak for MFU: {peak:g} TFLOP/s dense bf16 ({info['peak_source']})" if peak is not None
                 else "peak for MFU: n/a (peak unknown; give --peak-tflops)")
    return lines


# -- data, FLOPs -----------------------------------------------------------------------------------------------
def synthetic_set(n: int, px: int, num_classes: int = NUM_CLASSES, seed: int = 0, name: str = "bench") -> ImageSet:
    """``n`` random RGB images of ``px`` x ``px`` (uint8, in memory) with random labels."""
    rng = np.random.default_rng([seed, n, px])
    images = rng.integers(0, 256, (n, px, px, 3), dtype=np.uint8)
    labels = rng.integers(0, num_classes, n)
    return ImageSet(name, labels, [f"{name}/{i:06d}" for i in range(n)], [f"c{k}" for k in range(num_classes)],
                    images=images)


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def count_flops(loaded: LoadedModel, trainable_blocks: int | None, batch: int = 2) -> dict[str, float]:
    """FLOPs per image (torch's FlopCounterMode) of: the forward pass, a full fine-tuning step (forward and
    backward, every weight trainable), and, with ``trainable_blocks``, the frozen prefix's forward pass and a
    tail training step (forward and backward of the last blocks and the head on cached activations).

    Counted on a copy on the meta device (no arithmetic, instant) with timm's fused attention switched off, so
    that attention is counted as the matrix products it is (torch counts the fused CUDA kernels but not the CPU
    one); the optimiser's element-wise update is not counted (as usual for MFU)."""
    import torch.nn.functional as F

    model = copy.deepcopy(loaded.model)
    for m in model.modules():
        if hasattr(m, "fused_attn"):
            m.fused_attn = False
    try:
        model = model.to("meta")
        dev = torch.device("meta")
    except (RuntimeError, NotImplementedError):  # pragma: no cover - a module that cannot live on meta
        dev = torch.device("cpu")
    x = torch.randn(batch, *loaded.data_config["input_size"], device=dev)
    y = torch.zeros(batch, dtype=torch.long, device=dev)
    out: dict[str, float] = {}
    model.eval()
    with torch.no_grad():
        out["forward"] = _flops(lambda: model(x)) / batch

    def step(fwd, inp):
        F.cross_entropy(fwd(inp).float(), y).backward()

    model.train()
    for p in model.parameters():
        p.requires_grad_(True)
    out["train_full"] = _flops(lambda: step(model, x)) / batch
    if trainable_blocks is not None:
        split = split_model(model, trainable_blocks)
        model.eval()
        with torch.no_grad():
            out["prefix_forward"] = _flops(lambda: split.prefix(x)) / batch
            h = split.prefix(x)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in split.trainable_parameters():
            p.requires_grad_(True)
        for m in split.tail_modules:
            m.train()
        out["train_tail"] = _flops(lambda: step(split.tail, h)) / batch
        out["activation_bytes"] = float(h[0].numel() * 4)  # one image's cached activations (fp32)
    return out


def _rate(flops_per_image: float | None, images_per_s: float, peak_tflops: float | None) -> dict[str, Any]:
    if not flops_per_image:
        return {"tflops": None, "mfu": None}
    achieved = flops_per_image * images_per_s / 1e12
    return {"tflops": achieved, "mfu": None if peak_tflops is None else achieved / peak_tflops}


def _reset_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None


def _oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


@contextlib.contextmanager
def _measured(row: dict[str, Any], device: torch.device):
    """Run the block from a clean memory state; an out-of-memory error becomes ``row["error"]``, the peak GPU memory
    ``row["peak_gpu_gib"]``."""
    _reset_memory(device)
    try:
        yield
    except RuntimeError as e:
        if not _oom(e):
            raise
        row["error"] = "out of memory"
    finally:
        row["peak_gpu_gib"] = _peak_memory_gib(device)
        _reset_memory(device)


# -- the measurements ------------------------------------------------------------------------------------------
def bench_input(loaded: LoadedModel, images: ImageSet, n: int | None = None, *, device: str = "auto"
                ) -> dict[str, Any]:
    """How fast one process prepares the training loop's images: the same dataset and transform ``fit`` uses
    (``TransformedImages`` + ``EvalTransform``, one image at a time), with the thread count the engine uses on
    ``device``; and how many DataLoader workers the engine spreads that work over there (0: the main process, in
    turn with each step)."""
    threads = settings.current().cpu_threads if resolve_device(device).type == "cpu" else None
    if threads is not None:
        torch.set_num_threads(threads)  # as Engine.threads() does (set, not restored)
    with tempfile.TemporaryDirectory(prefix="forensics-gpu-bench-") as tmp:
        workers = Engine(ArtifactStore(tmp), device=device).num_workers  # the engine's DataLoader workers here
    ds = TransformedImages(images, EvalTransform(loaded.data_config))
    n = min(n or len(images), len(images))
    ds[0]  # first call: transform set-up
    t = time.perf_counter()
    torch.stack([ds[i][0] for i in range(n)])
    dt = time.perf_counter() - t
    return {"images": n, "seconds": dt, "images_per_s": n / dt, "engine_workers": workers}


def bench_train(loaded: LoadedModel, images: ImageSet, *, device: str, batch_size: int, warmup: int, steps: int,
                trainable_blocks: int | None, flops: dict[str, float], peak_tflops: float | None,
                workdir: str | Path | None = None) -> dict[str, Any]:
    """Shadow fine-tuning throughput through ``Engine.train``: one epoch of ``warmup + steps`` steps over the
    first ``batch_size * (warmup + steps)`` images; the last ``steps`` are timed.  With ``trainable_blocks`` the
    prefix activations are computed first (``Engine.activations``, timed: the one-off caching cost) and the
    training loop reuses them, as it does in an audit."""
    if warmup < 1 or steps < 1:
        raise ValueError("need at least one warm-up step and one timed step")
    n = batch_size * (warmup + steps)
    if n > len(images):
        raise ValueError(f"{n} images needed, {len(images)} given")
    subset = images.subset(np.arange(n), f"train-{batch_size}")
    mode = "full" if trainable_blocks is None else f"last {trainable_blocks}"
    row: dict[str, Any] = {"mode": mode, "batch_size": batch_size, "warmup_steps": warmup, "timed_steps": steps}
    with tempfile.TemporaryDirectory(prefix="forensics-gpu-bench-", dir=workdir) as tmp:
        engine = Engine(ArtifactStore(tmp), device=device, cache_blocks=trainable_blocks)
        model = loaded.clone()
        cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=1e-4, warmup_fraction=0.0,
                          trainable_blocks=trainable_blocks)
        stamps: list[tuple[int, float]] = []

        def progress(p: TrainProgress) -> None:
            if not p.done:
                stamps.append((p.step, time.perf_counter()))

        with _measured(row, engine.device):
            if trainable_blocks is not None:
                t = time.perf_counter()
                with engine.threads():
                    engine.activations(model, split_model(model.model, trainable_blocks), subset)
                cache_s = time.perf_counter() - t
                row["prefix_cache"] = {"images": n, "seconds": cache_s, "images_per_s": n / cache_s,
                                       **_rate(flops.get("prefix_forward"), n / cache_s, peak_tflops)}
            t0 = time.perf_counter()
            engine.train(model, subset, subset.labels, cfg, progress=progress, label="bench")
            row["wall_s"] = time.perf_counter() - t0
        del model
    if "error" in row:
        return row
    if len(stamps) != warmup + steps:
        raise RuntimeError(f"expected {warmup + steps} progress events, got {len(stamps)}")
    steady = stamps[-1][1] - stamps[warmup - 1][1]
    ips = steps * batch_size / steady
    row.update(step_ms=1000 * steady / steps, images_per_s=ips, first_steps_s=stamps[warmup - 1][1] - t0,
               flops_per_image=flops["train_full" if trainable_blocks is None else "train_tail"],
               **_rate(flops["train_full" if trainable_blocks is None else "train_tail"], ips, peak_tflops))
    return row


def bench_logits(loaded: LoadedModel, images: ImageSet, warm: ImageSet, *, device: str, batch_size: int,
                 cache_blocks: int | None, flops_per_image: float, peak_tflops: float | None,
                 workdir: str | Path | None = None) -> dict[str, Any]:
    """Suspect logits through ``Engine.logits`` (a fresh store, so nothing is reused): a warm-up call on
    ``warm``, then the timed call on ``images``, whole (data path, model, and with ``cache_blocks`` the prefix
    activations written to the store and read back)."""
    row: dict[str, Any] = {"batch_size": batch_size, "images": len(images),
                           "path": "whole forward" if cache_blocks is None else f"prefix stored (cache_blocks="
                                                                                f"{cache_blocks})"}
    with tempfile.TemporaryDirectory(prefix="forensics-gpu-bench-", dir=workdir) as tmp:
        engine = Engine(ArtifactStore(tmp), device=device, cache_blocks=cache_blocks, batch_size=batch_size)
        with _measured(row, engine.device):
            engine.logits(loaded, warm)
            t = time.perf_counter()
            out = engine.logits(loaded, images)
            dt = time.perf_counter() - t
        if "error" in row:
            return row
        row["store_mb"] = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e6
    if out.shape != (len(images), loaded.num_classes):
        raise RuntimeError(f"logits of shape {out.shape}")
    ips = len(images) / dt
    row.update(seconds=dt, images_per_s=ips, flops_per_image=flops_per_image,
               **_rate(flops_per_image, ips, peak_tflops))
    return row


# -- a complete audit ------------------------------------------------------------------------------------------
def _perturb(loaded: LoadedModel, names: frozenset[str] | None, seed: int, scale: float = 1e-3) -> LoadedModel:
    """A copy of ``loaded`` with small seeded noise on the named weights (all floating weights when None)."""
    out = loaded.clone()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in out.model.state_dict().items():
            if t.is_floating_point() and (names is None or name in names):
                t.add_(scale * torch.randn(t.shape, generator=g, dtype=t.dtype))
    return out.refresh_fingerprint()


def audit_store_estimate(foundation: LoadedModel, n_private: int, n_heldout: int, suspects: int, suspect_kind: str,
                         trainable_blocks: int | None, gamma: float = 0.1) -> float:
    """Rough bytes of prefix activations an audit writes to the store (and keeps in the engine's memory): every
    image set that passes through a frozen prefix (the private data, its triggered copy, the benign, reference and
    member subsets, D_s twice, the held-out data, the query set once per new prefix), plus the shadows' weights."""
    if trainable_blocks is None:
        return 0.0
    per_image = count_flops(foundation, trainable_blocks)["activation_bytes"]
    ds, half = gamma * n_private, n_private / 2
    queries = half + ds + n_heldout
    sets = n_private * 2 + half * 3 + 2 * ds + n_heldout + queries * (suspects if suspect_kind == "all" else 1)
    weights = 3 * sum(p.numel() * p.element_size() for p in foundation.model.parameters())  # the three shadows
    return sets * per_image + weights


def bench_audit(foundation: LoadedModel, *, device: str, n_private: int, n_heldout: int, suspects: int,
                suspect_kind: str = "tail", trainable_blocks: int | None = 1, image_px: int = 224,
                workdir: str | Path | None = None, seed: int = 0, epochs: int | None = None) -> dict[str, Any]:
    """A complete audit through the product's API: ``build_audit`` (loss order, poisoned shadow, benign shadow,
    membership reference, meta-classifier, query set) on synthetic data, then ``Audit.verify`` of ``suspects``.

    The victim is the foundation with its trained part (the last ``trainable_blocks`` blocks and the head, or
    every weight) perturbed, as a partially fine-tuned victim shares its foundation's frozen prefix.  Suspects:
    ``tail`` - the victim with its last blocks perturbed again (fine-tuned copies: they share the victim's prefix,
    whose activations on the query set are computed once); ``all`` - every weight perturbed (unrelated models:
    a whole forward pass over the query set each).  Loading models and data is not timed (all in memory).
    The shadows' recipe is the product's default (``AuditConfig()``); ``epochs`` overrides both epoch counts (tests).
    The private data must give D_s >= 34 images (gamma 0.1: 340 images) for the meta-classifier's verify split."""
    from forensics.audit.build import build_audit
    from forensics.audit.config import AuditConfig
    from forensics.audit.spec import AuditSpec

    if suspect_kind not in ("tail", "all"):
        raise ValueError("suspect_kind is 'tail' or 'all'")
    tail = None if trainable_blocks is None else split_model(foundation.model, trainable_blocks).tail_state
    victim = _perturb(foundation, tail, seed + 1)
    victim.source = "bench:victim"
    private = synthetic_set(n_private, image_px, foundation.num_classes, seed, "private")
    heldout = synthetic_set(n_heldout, image_px, foundation.num_classes, seed + 1, "heldout")
    base = AuditConfig()
    train, poison = base.train, base.poison_train
    if epochs is not None:
        train, poison = replace(train, epochs=epochs), replace(poison, epochs=epochs)
    config = AuditConfig(seed=seed, train=replace(train, trainable_blocks=trainable_blocks),
                         poison_train=replace(poison, trainable_blocks=trainable_blocks))
    spec = AuditSpec(victim="bench:victim", foundation="bench:foundation", data="bench:private",
                     heldout="bench:heldout", device=device, config=config)
    events: list[tuple[float, Any]] = []
    result: dict[str, Any] = {"private": n_private, "heldout": n_heldout, "suspects": suspects,
                              "suspect_kind": suspect_kind, "trainable_blocks": trainable_blocks,
                              "train": config.train.to_dict(), "poison_train": config.poison_train.to_dict()}
    with tempfile.TemporaryDirectory(prefix="forensics-gpu-audit-", dir=workdir) as tmp:
        engine = Engine(ArtifactStore(tmp), device=device, cache_blocks=trainable_blocks)  # as open_audit makes it
        engine.progress = events_cb = (lambda ev: events.append((time.perf_counter(), ev)))
        _reset_memory(engine.device)
        t0 = time.perf_counter()
        audit = build_audit(spec, victim, foundation, private, heldout, engine, events_cb)
        t_built = time.perf_counter()
        verify_s, p_values = [], []
        for i in range(suspects):
            s = _perturb(victim, tail if suspect_kind == "tail" else None, seed + 100 + i)
            t = time.perf_counter()
            v = audit.verify(s, name=f"suspect {i}")
            verify_s.append(time.perf_counter() - t)
            p_values.append(v.p_value)
            del s
        t_end = time.perf_counter()
        result["store_gb"] = sum(f.stat().st_size for f in Path(tmp).rglob("*") if f.is_file()) / 1e9
        result["peak_gpu_gib"] = _peak_memory_gib(engine.device)
        result["queries"] = len(audit.queries)
        del audit, engine
        _reset_memory(resolve_device(device))
    stages: dict[str, float] = {}
    started: dict[str, float] = {}
    for t, ev in events:
        if isinstance(ev, StageProgress):
            if ev.status == "start":
                started[ev.stage] = t
            elif ev.stage in started:
                stages[ev.stage] = stages.get(ev.stage, 0.0) + t - started.pop(ev.stage)
    stages["query set (rest of build_audit)"] = max(0.0, (t_built - t0) - sum(stages.values()))
    result.update(stages_s=stages, build_s=t_built - t0, verify_s=verify_s, total_s=t_end - t0, p_values=p_values,
                  peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
    return result


# -- tables ------------------------------------------------------------------------------------------------------
def _num(x: float | None, fmt: str = "{:,.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _mfu(x: float | None, peak: float | None) -> str:
    if peak is None:
        return "n/a (peak unknown)"
    return "-" if x is None else f"{100 * x:.1f} %"


def format_tables(res: dict[str, Any]) -> str:
    info, flops, peak = res["machine"], res["flops"], res["machine"]["peak_tflops"]
    gpu = info["device"] == "cuda"
    out = machine_lines(info)
    out.append(f"model: {res['arch']} (random init), {res['input_px']} px input, {NUM_CLASSES} classes; "
               f"synthetic {res['image_px']} px RGB images through the engine's eval transform")
    g = {k: v / 1e9 for k, v in flops.items() if k != "activation_bytes"}
    line = (f"FLOPs per image (torch FlopCounterMode): forward {g['forward']:.2f} G, full fine-tuning step "
            f"{g['train_full']:.2f} G")
    if "train_tail" in g:
        line += (f", prefix forward {g['prefix_forward']:.2f} G, tail step (last {res['trainable_blocks']} "
                 f"block(s) + head) {g['train_tail']:.2f} G; cached activations "
                 f"{flops['activation_bytes'] / 1e6:.2f} MB per image (fp32)")
    out.append(line)
    inp = res["input"]
    w = inp.get("engine_workers", 0)
    out.append(f"input path (decode + eval transform, one process): {inp['images_per_s']:,.0f} images/s "
               f"({inp['images']} images); " + (f"the engine runs it in {w} DataLoader workers here (at best about "
               f"{w} x that)" if w else "the engine runs it in the main process here, in turn with each step"))
    out.append("")
    mem = " peak GPU GiB |" if gpu else ""
    out.append("### Shadow fine-tuning (`Engine.train`, steady-state steps)")
    out.append("")
    if not res["train"]:
        out.append("(skipped)")
    else:
        out.append(f"| mode | batch | images/s | ms/step | TFLOP/s | MFU |{mem}")
        out.append("|---|---|---|---|---|---|" + ("---|" if gpu else ""))
    for r in res["train"]:
        m = f" {_num(r.get('peak_gpu_gib'))} |" if gpu else ""
        if "error" in r:
            out.append(f"| {r['mode']} | {r['batch_size']} | {r['error']} | - | - | - |{m}")
            continue
        out.append(f"| {r['mode']} | {r['batch_size']} | {_num(r['images_per_s'])} | {_num(r['step_ms'])} | "
                   f"{_num(r['tflops'], '{:.3f}')} | {_mfu(r['mfu'], peak)} |{m}")
    cached = [r for r in res["train"] if "prefix_cache" in r]
    if cached:
        out += ["", "One-off prefix caching before partial fine-tuning (`Engine.activations`: frozen prefix, "
                "forward only, written to the store)", "",
                "| images | seconds | images/s | TFLOP/s | MFU |", "|---|---|---|---|---|"]
        for r in cached:
            c = r["prefix_cache"]
            out.append(f"| {c['images']} | {c['seconds']:.2f} | {_num(c['images_per_s'])} | "
                       f"{_num(c['tflops'], '{:.3f}')} | {_mfu(c['mfu'], peak)} |")
    out += ["", "### Suspect logits (`Engine.logits`, one whole call after a warm-up call)", ""]
    out += [f"| path | batch | images | images/s | TFLOP/s | MFU | store MB |{mem}",
            "|---|---|---|---|---|---|---|" + ("---|" if gpu else "")] if res["logits"] else ["(skipped)"]
    for r in res["logits"]:
        m = f" {_num(r.get('peak_gpu_gib'))} |" if gpu else ""
        if "error" in r:
            out.append(f"| {r['path']} | {r['batch_size']} | {r['images']} | {r['error']} | - | - | - |{m}")
            continue
        out.append(f"| {r['path']} | {r['batch_size']} | {r['images']} | {_num(r['images_per_s'])} | "
                   f"{_num(r['tflops'], '{:.3f}')} | {_mfu(r['mfu'], peak)} | {_num(r['store_mb'])} |{m}")
    a = res.get("audit")
    if a is not None:
        out += ["", "### A complete audit (`build_audit` + `Audit.verify`)", ""]
        if "skipped" in a:
            out.append(f"NOT RUN: {a['skipped']}")
        else:
            tb = "full fine-tuning" if a["trainable_blocks"] is None else f"last {a['trainable_blocks']} block(s)"
            out.append(f"{a['private']} private + {a['heldout']} held-out images, {a['suspects']} suspects "
                       f"({a['suspect_kind']}), shadows: {tb}, {a['train']['epochs']} epochs (poisoned "
                       f"{a['poison_train']['epochs']}), batch {a['train']['batch_size']}; store "
                       f"{a['store_gb']:.2f} GB, peak RSS {a['peak_rss_gib']:.1f} GiB"
                       + (f", peak GPU {a['peak_gpu_gib']:.1f} GiB" if a.get("peak_gpu_gib") is not None else ""))
            out.append("(random weights and labels: the p-values mean nothing; this times the work)")
            out += ["", "| stage | seconds |", "|---|---|"]
            for k, v in a["stages_s"].items():
                out.append(f"| {k} | {v:.1f} |")
            vs = a["verify_s"]
            if vs:
                out.append(f"| verify {len(vs)} suspects (first {vs[0]:.1f} s, mean {np.mean(vs):.1f} s) | "
                           f"{sum(vs):.1f} |")
            out.append(f"| **total** | **{a['total_s']:.1f}** ({a['total_s'] / 60:.1f} min; target <= 10 min on "
                       "a GPU) |")
    return "\n".join(out)


# -- main --------------------------------------------------------------------------------------------------------
def _blocks(s: str) -> int | None:
    return None if s.lower() in ("full", "none", "all") else int(s)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA when visible), cuda, cuda:N or cpu")
    ap.add_argument("--arch", default=ARCH, help=f"timm architecture (default {ARCH})")
    ap.add_argument("--batch-sizes", type=int, nargs="+",
                    help=f"default {' '.join(map(str, GPU_BATCHES))} on a GPU, {' '.join(map(str, CPU_BATCHES))} "
                         "on the CPU")
    ap.add_argument("--warmup", type=int, help=f"untimed steps first (default {GPU_WARMUP} GPU, {CPU_WARMUP} CPU)")
    ap.add_argument("--steps", type=int, help=f"timed steps (default {GPU_STEPS} GPU, {CPU_STEPS} CPU)")
    ap.add_argument("--trainable-blocks", type=int, default=1,
                    help="partial fine-tuning: the last N blocks + head (default 1, the product's default)")
    ap.add_argument("--image-px", type=int, default=224, help="side of the synthetic source images (default 224)")
    ap.add_argument("--peak-tflops", type=float, help="the device's peak in TFLOP/s (overrides the table)")
    ap.add_argument("--skip-train", action="store_true")
    ap.add_argument("--skip-logits", action="store_true")
    ap.add_argument("--audit", action="store_true", help="also time a complete audit")
    ap.add_argument("--audit-images", type=int, help="private images (default 10000 GPU, 400 CPU; at least 340)")
    ap.add_argument("--audit-heldout", type=int, help="held-out images (default 2000 GPU, 100 CPU)")
    ap.add_argument("--audit-suspects", type=int, default=10)
    ap.add_argument("--audit-suspect-kind", choices=("tail", "all"), default="tail",
                    help="tail: fine-tuned copies sharing the victim's frozen prefix; all: every weight differs "
                         "(a whole forward pass per suspect, and its activations stored)")
    ap.add_argument("--audit-trainable-blocks", type=_blocks, default=1,
                    help="the shadows' recipe: last N blocks (default 1) or 'full'")
    ap.add_argument("--force", action="store_true", help="run the audit even if the store estimate exceeds the "
                                                         "free disk or memory")
    ap.add_argument("--store-dir", help="where the temporary artifact stores go (default: the system temp folder)")
    ap.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    ap.add_argument("--ray-scan", type=int, nargs="*", metavar="WORKERS",
                    help="also the Ray scan scaling table (benchmarks/scan.py: 20 suspects against the demo's audit) "
                         "with these worker counts (default: 1 2 4, or 1..the GPU count)")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    batches = args.batch_sizes or (GPU_BATCHES if gpu else CPU_BATCHES)
    warmup = args.warmup or (GPU_WARMUP if gpu else CPU_WARMUP)
    steps = args.steps or (GPU_STEPS if gpu else CPU_STEPS)
    info = machine_info(device, args.peak_tflops)
    peak = info["peak_tflops"]
    print("\n".join(machine_lines(info)), flush=True)
    if not gpu:
        print("NOTE: no GPU here - measuring the CPU (small batches, few steps); not comparable with GPU figures",
              flush=True)

    loaded = fresh_model(args.arch, NUM_CLASSES, seed=0, source=f"bench:{args.arch}")
    input_px = int(loaded.data_config["input_size"][-1])
    flops = count_flops(loaded, args.trainable_blocks)
    res: dict[str, Any] = {"machine": info, "arch": args.arch, "input_px": input_px, "image_px": args.image_px,
                           "trainable_blocks": args.trainable_blocks, "batch_sizes": list(batches),
                           "warmup_steps": warmup, "timed_steps": steps, "flops": flops, "train": [], "logits": []}
    n_max = max(batches) * (warmup + steps)
    images = synthetic_set(n_max, args.image_px, NUM_CLASSES, seed=0, name="bench")
    res["input"] = bench_input(loaded, images, min(n_max, 256), device=args.device)
    if not args.skip_train:
        for tb in (None, args.trainable_blocks):
            for bs in batches:
                t = time.perf_counter()
                row = bench_train(loaded, images, device=args.device, batch_size=bs, warmup=warmup, steps=steps,
                                  trainable_blocks=tb, flops=flops, peak_tflops=peak, workdir=args.store_dir)
                res["train"].append(row)
                print(f"  train {row['mode']:>7} batch {bs:4d}: {_num(row.get('images_per_s'))} images/s "
                      f"({time.perf_counter() - t:.0f} s)", flush=True)
    if not args.skip_logits:
        warm = synthetic_set(max(batches), args.image_px, NUM_CLASSES, seed=1, name="warm")
        for cache_blocks in (None, args.trainable_blocks):
            for bs in batches:
                t = time.perf_counter()
                row = bench_logits(loaded, images.subset(np.arange(bs * steps), f"logits-{bs}"),
                                   warm.subset(np.arange(bs), "warm"), device=args.device, batch_size=bs,
                                   cache_blocks=cache_blocks, flops_per_image=flops["forward"], peak_tflops=peak,
                                   workdir=args.store_dir)
                res["logits"].append(row)
                print(f"  logits {row['path']}, batch {bs:4d}: {_num(row.get('images_per_s'))} images/s "
                      f"({time.perf_counter() - t:.0f} s)", flush=True)
    del images
    if args.audit:
        n_private = args.audit_images or (10_000 if gpu else 400)
        n_heldout = args.audit_heldout or (2_000 if gpu else 100)
        need = audit_store_estimate(loaded, n_private, n_heldout, args.audit_suspects, args.audit_suspect_kind,
                                    args.audit_trainable_blocks)
        free = shutil.disk_usage(args.store_dir or tempfile.gettempdir()).free
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        print(f"  audit: about {need / 1e9:.1f} GB of prefix activations expected in the store and in memory "
              f"({free / 1e9:.0f} GB disk free, {ram / 1e9:.0f} GB RAM)", flush=True)
        if need > 0.9 * min(free, ram) and not args.force:
            res["audit"] = {"skipped": f"the audit would write about {need / 1e9:.0f} GB of prefix activations "
                                       f"(the engine stores and keeps them in memory) but only {free / 1e9:.0f} GB "
                                       f"disk / {ram / 1e9:.0f} GB RAM are there; use fewer images or suspects, "
                                       "--audit-suspect-kind tail, --store-dir, or --force"}
        else:
            t = time.perf_counter()
            res["audit"] = bench_audit(loaded, device=args.device, n_private=n_private, n_heldout=n_heldout,
                                       suspects=args.audit_suspects, suspect_kind=args.audit_suspect_kind,
                                       trainable_blocks=args.audit_trainable_blocks, image_px=args.image_px,
                                       workdir=args.store_dir)
            res["audit"]["expected_store_gb"] = need / 1e9
            print(f"  audit: {time.perf_counter() - t:.0f} s", flush=True)
    print()
    print(format_tables(res))
    if args.ray_scan is not None:  # the suspects of a scan as Ray tasks: the same fan-out as `scan --ray`
        gpus = torch.cuda.device_count()
        workers = args.ray_scan or ([1, 2, 4] if not gpus else sorted({1, max(1, gpus // 2), gpus}))
        out = Path(tempfile.mkdtemp(prefix="ray-scan-")) / "scan.json"
        subprocess.run([sys.executable, str(Path(__file__).with_name("scan.py")), "--workers", *map(str, workers),
                        "--json", str(out)], check=True)
        res["ray_scan"] = json.loads(out.read_text())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2, default=str))
        print(f"\nwritten: {args.json}")
    return res


if __name__ == "__main__":
    main()
