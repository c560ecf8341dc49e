"""The one training loop: :func:`fit` fine-tunes a model in place.

Every model this project trains (the demo victim, the shadows, the membership reference, every attack of the
zoo, the innocent models) goes through :meth:`forensics.engine.Engine.train`, which runs :func:`fit`: full or
partial fine-tuning (the last N blocks + head), AdamW with warm-up and a cosine schedule, seeded shuffles and
dropout (a resumed run reproduces an uninterrupted one bit for bit), a checkpoint after every epoch, and
progress callbacks.  Hard labels train with cross-entropy; soft targets (a teacher's logits) with
temperature-scaled KL divergence (distillation).  Under torchrun every worker takes its share of each batch
(:mod:`forensics.runtime.distributed`).

The loop needs little of the engine that runs it: :class:`Runner` says what (the device, cached prefix
activations, autocast), so the engine imports the loop and never the other way round.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from ..data.images import ImageSet
from ..data.transforms import AugmentedImages, EvalTransform, TransformedImages, Trigger
from ..errors import ArtifactError, ConfigError
from ..models import LoadedModel
from ..models.splitting import Split, split_model
from ..runtime import distributed
from ..runtime.rng import RNG_LOCK
from ..runtime.store import ArtifactStore
from .recipe import CHECKPOINT, ProgressFn, TrainConfig, TrainHistory, TrainProgress


class Runner(Protocol):
    """What :func:`fit` needs of the engine that runs it (:class:`forensics.engine.Engine` is one)."""

    device: torch.device
    num_workers: int          # DataLoader workers that decode images ahead of each step (0: in this process)
    store: ArtifactStore      # named in an error when torchrun workers disagree

    def activations(self, loaded: LoadedModel, split: Split, images: ImageSet, *, trigger: Trigger | None = None,
                    triggered: np.ndarray | None = None) -> torch.Tensor: ...

    def to_device(self, x: torch.Tensor) -> torch.Tensor: ...

    def autocast(self) -> contextlib.AbstractContextManager: ...


def _warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


def _steps_per_epoch(n: int, bs: int) -> int:
    return n // bs if n % bs < 2 else n // bs + 1  # drop a last batch of one sample


class _Checkpoint:
    """The tail's weights, optimiser and scheduler after each finished epoch, written atomically."""

    def __init__(self, folder: Path | None, cfg: TrainConfig, n: int, tail_state: frozenset[str]):
        self.path = Path(folder) / CHECKPOINT if folder else None
        self.cfg, self.n, self.tail_state = cfg, n, tail_state
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def restore(self, model, opt, sched, history: TrainHistory) -> int:
        """Load a checkpoint of the same run, if any; return the number of finished epochs."""
        if self.path is None or not self.path.is_file():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("config") != repr(self.cfg) or state.get("n") != self.n:
            return 0
        model.load_state_dict(state["model"], strict=False)
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history.epochs = list(state["history"])
        history.resumed_from_epoch = int(state["epoch"])
        return history.resumed_from_epoch

    def save(self, model, opt, sched, epoch: int, history: TrainHistory) -> None:
        if self.path is None or not distributed.world().main:  # under torchrun, rank 0 writes it
            return
        sd = model.state_dict()
        tmp = self.path.with_name(f".checkpoint.tmp-{os.getpid()}")
        torch.save({"config": repr(self.cfg), "n": self.n, "epoch": epoch, "history": history.epochs,
                    "model": {k: v.cpu() for k, v in sd.items() if k in self.tail_state},
                    "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp)
        os.replace(tmp, self.path)


def _loss(out: torch.Tensor, y: torch.Tensor, soft: bool, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, hard labels): temperature-scaled KL to a teacher's logits, or cross-entropy."""
    if soft:
        t = cfg.temperature
        loss = F.kl_div(F.log_softmax(out / t, 1), F.log_softmax(y / t, 1), log_target=True,
                        reduction="batchmean") * t * t
        return loss, y.argmax(1)
    return F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing), y


def fit(engine: Runner, loaded: LoadedModel, images: ImageSet, targets: np.ndarray, cfg: TrainConfig, *,
        trigger: Trigger | None = None, triggered: np.ndarray | None = None, checkpoint_dir: Path | None = None,
        progress: ProgressFn | None = None, label: str = "training") -> TrainHistory:
    """Fine-tune ``loaded.model`` in place on (images, targets); returns the history.

    ``targets`` are class indices (N,) for cross-entropy or teacher logits (N, K) for distillation.
    If ``checkpoint_dir`` holds a checkpoint of the same run, training resumes after its last finished
    epoch.  Holds the RNG lock (:mod:`forensics.runtime.rng`) while it draws."""
    with RNG_LOCK:
        return _fit(engine, loaded, images, targets, cfg, trigger=trigger, triggered=triggered,
                    checkpoint_dir=checkpoint_dir, progress=progress, label=label)


def _fit(engine, loaded, images, targets, cfg, *, trigger, triggered, checkpoint_dir, progress, label):
    targets = np.asarray(targets)
    if len(targets) != len(images):
        raise ConfigError(f"{len(targets)} targets for {len(images)} images")
    if len(images) < 2:
        raise ConfigError("need at least 2 training images")
    soft = targets.ndim == 2
    t_all = torch.from_numpy(targets.astype(np.float32 if soft else np.int64))
    model = loaded.model
    split = split_model(model, cfg.trainable_blocks)
    start = time.perf_counter()
    # partial fine-tuning: the frozen prefix's activations, computed once (not with augmentation: every view
    # differs); full fine-tuning: images through the whole model
    feats = engine.activations(loaded, split, images, trigger=trigger, triggered=triggered) \
        if split.family != "full" and not cfg.augment else None
    model.to(engine.device)
    # channels_last: on a GPU for whole images; on a CPU for the tail on cached activations too, where the tail's
    # backward pass takes half the time (measured: 31 -> 17 ms per step of EfficientNet-Lite0's last stage, 2 cores)
    channels_last = engine.device.type == "cuda" or feats is not None
    if channels_last:
        model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    params = split.trainable_parameters()
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(images)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = _steps_per_epoch(n, bs)
    total = steps_per_epoch * cfg.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(total, int(cfg.warmup_fraction * total)))
    history = TrainHistory()
    ckpt = _Checkpoint(checkpoint_dir, cfg, n, split.tail_state)
    first_epoch = ckpt.restore(model, opt, sched, history)
    group = distributed.world()
    if distributed.broadcast(first_epoch) != first_epoch:
        raise ArtifactError(f"worker {group.rank} resumed from epoch {first_epoch} but rank 0 from another: every "
                            f"torchrun worker must see the same store folder ({engine.store.root}), on a shared file "
                            "system without stale caches")
    history.workers = group.size
    # under torchrun every worker restored the same checkpoint (or none): DDP starts from rank 0's weights anyway
    step_module = distributed.wrap(_Forward(model, model if split.family == "full" else split.tail), engine.device)
    if feats is None:
        rows = triggered if triggered is not None else (np.ones(n, bool) if trigger is not None else None)
        dataset = (AugmentedImages(images, EvalTransform(loaded.data_config), cfg.seed, trigger, rows)
                   if cfg.augment else TransformedImages(images, EvalTransform(loaded.data_config), trigger, rows))

        def prepare(x):
            x = engine.to_device(x)
            if split.family == "full":
                return x
            with torch.no_grad(), engine.autocast():  # the frozen prefix, in eval mode, on this batch's views
                return split.prefix(x).float()

        def epoch_inputs(shares):
            """Each step's images: decoded and transformed by DataLoader workers ahead of the step where the engine
            has workers (a GPU would otherwise wait for the CPU), in this process otherwise.  Same batches either
            way: every view is drawn per (seed, epoch, row)."""
            if engine.num_workers > 0:
                loader = torch.utils.data.DataLoader(dataset, batch_sampler=[s.tolist() for s, _ in shares],
                                                     num_workers=engine.num_workers,
                                                     pin_memory=engine.device.type == "cuda",
                                                     generator=torch.Generator().manual_seed(0))  # not the global RNG
                return (prepare(x) for x, _ in loader)
            return (prepare(torch.stack([dataset[int(i)][0] for i in s])) for s, _ in shares)
    else:
        def epoch_inputs(shares):
            return (feats[s].to(engine.device) for s, _ in shares)

    step = first_epoch * steps_per_epoch
    for epoch in range(first_epoch, cfg.epochs):
        _train_mode(model, split)
        if cfg.augment and isinstance(dataset, AugmentedImages):
            dataset.epoch = epoch
        order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        torch.manual_seed(cfg.seed * 104729 + epoch)
        sum_loss, sum_correct, seen = 0.0, 0, 0
        # each step's global batch; under torchrun this worker's share of it, its loss weighted so that the averaged
        # gradient is the one-process gradient of the whole batch
        shares = [distributed.local_share(order[b * bs:(b + 1) * bs], group) for b in range(steps_per_epoch)]
        for (idx, weight), x in zip(shares, epoch_inputs(shares), strict=True):
            y = t_all[idx].to(engine.device)
            with engine.autocast():
                out = step_module(x).float()
            loss, hard = _loss(out, y, soft, cfg)
            opt.zero_grad(set_to_none=True)
            (loss * weight if weight != 1.0 else loss).backward()
            opt.step()
            sched.step()
            step += 1
            if weight:
                sum_loss += float(loss.detach()) * len(idx)
                sum_correct += int((out.argmax(1) == hard).sum())
                seen += len(idx)
            if progress is not None:
                progress(TrainProgress(label, epoch + 1, cfg.epochs, step, total, sum_loss / max(seen, 1),
                                       sum_correct / max(seen, 1)))
        all_loss, all_correct, all_seen = distributed.sum_over_workers([sum_loss, sum_correct, seen])
        history.epochs.append({"epoch": epoch + 1, "loss": all_loss / all_seen, "accuracy": all_correct / all_seen,
                               "lr": float(sched.get_last_lr()[0])})
        ckpt.save(model, opt, sched, epoch + 1, history)
    distributed.sync_state(model)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval().cpu()
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    loaded.refresh_fingerprint()
    history.seconds = time.perf_counter() - start
    if progress is not None and history.epochs:
        last = history.epochs[-1]
        progress(TrainProgress(label, cfg.epochs, cfg.epochs, total, total, last["loss"], last["accuracy"], True))
    return history


class _Forward(torch.nn.Module):
    """The training step's forward pass (the whole model, or the tail on cached activations) as a module, so that
    DDP can wrap it; the model is its only submodule."""

    def __init__(self, model: torch.nn.Module, forward: Callable[[torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model = model
        self._forward = (forward,)  # a tuple: the model is not registered twice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward[0](x)


def _train_mode(model: torch.nn.Module, split: Split) -> None:
    """The frozen prefix in eval mode (fixed BatchNorm statistics, no dropout), the tail in train mode."""
    model.eval()
    for m in split.tail_modules:
        m.train()
