"""The one training engine, and batched inference.

Every model this project trains (the demo victim, both shadows, the membership reference, every
attack of the zoo, the innocent models) goes through :meth:`Engine.train`: full or partial
fine-tuning (the last N blocks + head), AdamW with warm-up and a cosine schedule, bf16 autocast and
channels_last on CUDA (and for CPU inference), seeded shuffles and dropout (a resumed run reproduces an uninterrupted one),
a checkpoint after every epoch, and progress callbacks.  Hard labels train with cross-entropy;
soft targets (a teacher's logits) with temperature-scaled KL divergence (distillation plug-in).

With partial fine-tuning the frozen prefix runs in eval mode and is never augmented, so its
activations are computed once per (prefix weights, image set, transform, trigger) and stored in the
artifact store; training and inference then run only the tail.
"""
from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet, Trigger, iter_batches
from .errors import ConfigError
from .models import LoadedModel, fingerprint_state_dict
from .store import ArtifactStore


@dataclass(frozen=True)
class TrainConfig:
    """How to fine-tune.  ``trainable_blocks=None`` trains every weight (full fine-tuning)."""

    epochs: int = 6
    lr: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 64
    warmup_fraction: float = 0.1
    trainable_blocks: int | None = 1
    temperature: float = 4.0
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "an integer >= 1"),
            ("lr", 0 < self.lr < 1, "in (0, 1)"),
            ("weight_decay", self.weight_decay >= 0, ">= 0"),
            ("batch_size", self.batch_size >= 2, "an integer >= 2"),
            ("warmup_fraction", 0 <= self.warmup_fraction < 1, "in [0, 1)"),
            ("trainable_blocks", self.trainable_blocks is None or self.trainable_blocks >= 0, "None or >= 0"),
            ("temperature", self.temperature > 0, "> 0"),
            ("label_smoothing", 0 <= self.label_smoothing < 1, "in [0, 1)"),
        ]
        for name, ok, rule in checks:
            if not ok:
                raise ConfigError(f"The {name!r} parameter of TrainConfig must be {rule}. "
                                  f"Got {getattr(self, name)!r} instead.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainProgress:
    """What a progress callback receives after each optimisation step."""

    label: str
    epoch: int
    epochs: int
    step: int
    total_steps: int
    loss: float
    accuracy: float
    done: bool = False


@dataclass
class TrainHistory:
    epochs: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "resumed_from_epoch": self.resumed_from_epoch, "seconds": self.seconds}


ProgressFn = Callable[[TrainProgress], None]

# Training and the meta-classifier seed torch's global RNG (dropout, initialisation).  Two sessions of
# one process (two dashboard tabs) would interleave their draws; this lock keeps each run reproducible.
RNG_LOCK = threading.RLock()


def model_key(loaded: LoadedModel) -> str:
    """What identifies a model's function in cache keys: its weights and its architecture."""
    return f"{loaded.arch}:{loaded.fingerprint}"


# --------------------------------------------------------------------------------------------
# splitting a timm model into a frozen prefix and a trainable tail


@dataclass
class Split:
    """prefix(x) -> h, tail(h) -> logits; ``tail_modules`` hold every trainable weight."""

    k: int
    family: str
    prefix: Callable[[torch.Tensor], torch.Tensor]
    tail: Callable[[torch.Tensor], torch.Tensor]
    prefix_modules: list[nn.Module]
    tail_modules: list[nn.Module]

    def prefix_fingerprint(self, model: nn.Module) -> str:
        # every weight outside the tail (a ViT's cls_token / pos_embed / norm_pre are no prefix module)
        tail = _state_names(model, self.tail_modules)
        state = {k: v for k, v in model.state_dict().items() if k not in tail}
        return fingerprint_state_dict(state) + f":{self.family}:{self.k}"


def split_model(model: nn.Module, trainable_blocks: int | None) -> Split:
    """Split ``model`` so that its last ``trainable_blocks`` blocks and the head are the tail.

    ``None`` means full fine-tuning (empty prefix).  Cached activations are supported for timm's
    EfficientNet / MobileNet families (``blocks`` are stages) and Vision Transformers (``blocks``
    are transformer blocks); for other architectures use full fine-tuning.
    """
    cls = type(model).__name__
    if trainable_blocks is None:
        return Split(-1, "full", lambda x: x, model, [], [model])
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.Sequential):
        raise ConfigError(f"partial fine-tuning is supported for timm EfficientNet, MobileNet and ViT "
                          f"models, not {cls}; set trainable_blocks=None (full fine-tuning)")
    n = len(blocks)
    k = n - min(int(trainable_blocks), n)
    if hasattr(model, "conv_stem") and hasattr(model, "bn1"):  # EfficientNet, MobileNetV3
        pre_mods = [model.conv_stem, model.bn1, *blocks[:k]]
        has_conv_head_bn2 = hasattr(model, "bn2") and hasattr(model, "conv_head") and cls == "EfficientNet"

        def prefix(x):
            return blocks[:k](model.bn1(model.conv_stem(x)))

        def tail(h):
            h = blocks[k:](h)
            if has_conv_head_bn2:
                h = model.bn2(model.conv_head(h))
            return model.forward_head(h)

        tail_mods = [m for m in model.children() if all(m is not p for p in (model.conv_stem, model.bn1, blocks))]
        tail_mods += list(blocks[k:])
        return Split(k, "convnet", prefix, tail, pre_mods, tail_mods)
    if hasattr(model, "patch_embed") and hasattr(model, "_pos_embed"):  # VisionTransformer
        pre_mods = [model.patch_embed, *blocks[:k]]

        def prefix(x):
            return blocks[:k](model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x)))))

        def tail(h):
            return model.forward_head(model.norm(blocks[k:](h)))

        if k == 0:
            raise ConfigError("for a ViT, trainable_blocks must be smaller than its depth (the patch and "
                              "position embeddings stay frozen), or None for full fine-tuning")
        tail_mods = [*blocks[k:], model.norm, *[m for n_, m in model.named_children()
                                                 if n_ in ("fc_norm", "head", "head_drop", "attn_pool")]]
        return Split(k, "vit", prefix, tail, pre_mods, tail_mods)
    raise ConfigError(f"partial fine-tuning is not supported for {cls}; set trainable_blocks=None")


# --------------------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no GPU is visible; use device='cpu' or 'auto'")
    return torch.device(device)


def _warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    return f


class Engine:
    """Runs models: cached prefix activations, batched logits, and training."""

    def __init__(self, store: ArtifactStore, *, device: str = "auto", cache_blocks: int | None = 1,
                 batch_size: int | None = None, num_workers: int = 0):
        self.store = store
        self.device = resolve_device(device)
        self.cache_blocks = cache_blocks
        # inference batch: large on a GPU; on a CPU 32 channels_last images run fastest (measured)
        self.batch_size = batch_size or (256 if self.device.type == "cuda" else 32)
        self.num_workers = num_workers
        self._memory: dict[str, torch.Tensor] = {}

    @property
    def precision(self) -> str:
        """bf16 autocast on CUDA, fp32 elsewhere: part of every cache key, results differ."""
        return "bf16" if self.device.type == "cuda" else "fp32"

    # -- activations -----------------------------------------------------------------------
    def activations(self, loaded: LoadedModel, split: Split, images: ImageSet, *,
                    trigger: Trigger | None = None, triggered: np.ndarray | None = None) -> torch.Tensor:
        """The frozen prefix's output for every image (row order), computed once and stored."""
        if trigger is not None and triggered is None:
            triggered = np.ones(len(images), bool)
        trig_cfg = None
        if trigger is not None:
            trig_cfg = {"trigger": trigger.to_dict(),
                        "rows": fingerprint_bytes(np.packbits(np.asarray(triggered, bool)).tobytes())}
        config = {"data_config": _jsonable(loaded.data_config), "trigger": trig_cfg, "precision": self.precision}
        inputs = {"prefix": f"{loaded.arch}:{split.prefix_fingerprint(loaded.model)}", "images": images.fingerprint}
        from .store import artifact_key
        mem_key = artifact_key("activations", config, inputs)
        if mem_key in self._memory:
            return self._memory[mem_key]

        def compute(tmp: Path):
            model = loaded.model.to(self.device, memory_format=torch.channels_last).eval()
            outs = []
            with torch.inference_mode(), self._autocast():
                for x, _ in iter_batches(images, loaded.data_config, self.batch_size, trigger=trigger,
                                         triggered=triggered, num_workers=self.num_workers):
                    x = self._image_input(x)
                    outs.append(split.prefix(x).float().cpu().contiguous())
            model.to("cpu", memory_format=torch.contiguous_format)
            np.save(tmp / "activations.npy", torch.cat(outs).numpy())

        path = self.store.get_or_compute("activations", config, inputs, compute)
        feats = torch.from_numpy(np.load(path / "activations.npy"))
        self._memory[mem_key] = feats
        return feats

    # -- inference -------------------------------------------------------------------------
    def logits(self, loaded: LoadedModel, images: ImageSet, *, trigger: Trigger | None = None,
               triggered: np.ndarray | None = None) -> np.ndarray:
        """Eval-mode logits (N, K) in row order; stored, so a model is run once per image set."""
        if trigger is not None and triggered is None:
            triggered = np.ones(len(images), bool)
        config = {"data_config": _jsonable(loaded.data_config),
                  "trigger": None if trigger is None else trigger.to_dict(),
                  "rows": None if triggered is None else targets_fingerprint(np.asarray(triggered, bool)),
                  "precision": self.precision, "cache_blocks": self.cache_blocks}
        inputs = {"model": model_key(loaded), "images": images.fingerprint}

        def compute(tmp: Path):
            np.save(tmp / "logits.npy", self._run_logits(loaded, images, trigger, triggered))

        path = self.store.get_or_compute("logits", config, inputs, compute)
        return np.load(path / "logits.npy")

    def _run_logits(self, loaded: LoadedModel, images: ImageSet, trigger: Trigger | None,
                    triggered: np.ndarray | None) -> np.ndarray:
        model = loaded.model.eval()
        try:
            split = split_model(model, self.cache_blocks)
        except ConfigError:
            split = split_model(model, None)
        outs = []
        if split.family != "full":
            feats = self.activations(loaded, split, images, trigger=trigger, triggered=triggered)
            model.to(self.device)
            with torch.inference_mode(), self._autocast():
                for i in range(0, len(feats), self.batch_size):
                    outs.append(split.tail(feats[i:i + self.batch_size].to(self.device)).float().cpu())
        else:
            model.to(self.device, memory_format=torch.channels_last)
            with torch.inference_mode(), self._autocast():
                for x, _ in iter_batches(images, loaded.data_config, self.batch_size, trigger=trigger,
                                         triggered=triggered, num_workers=self.num_workers):
                    outs.append(model(self._image_input(x)).float().cpu())
        model.to("cpu", memory_format=torch.contiguous_format)
        return torch.cat(outs).numpy().astype(np.float32)

    # -- training --------------------------------------------------------------------------
    def train(self, loaded: LoadedModel, images: ImageSet, targets: np.ndarray, cfg: TrainConfig, *,
              trigger: Trigger | None = None, triggered: np.ndarray | None = None,
              checkpoint_dir: Path | None = None, progress: ProgressFn | None = None,
              label: str = "training") -> TrainHistory:
        with RNG_LOCK:
            return self._train(loaded, images, targets, cfg, trigger=trigger, triggered=triggered,
                               checkpoint_dir=checkpoint_dir, progress=progress, label=label)

    def _train(self, loaded: LoadedModel, images: ImageSet, targets: np.ndarray, cfg: TrainConfig, *,
               trigger: Trigger | None = None, triggered: np.ndarray | None = None,
               checkpoint_dir: Path | None = None, progress: ProgressFn | None = None,
               label: str = "training") -> TrainHistory:
        """Fine-tune ``loaded.model`` in place on (images, targets); returns the history.

        ``targets`` are class indices (N,) for cross-entropy or teacher logits (N, K) for
        distillation.  If ``checkpoint_dir`` holds a checkpoint of the same run, training resumes
        after its last finished epoch.
        """
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
        if split.family != "full":
            feats = self.activations(loaded, split, images, trigger=trigger, triggered=triggered)
        else:
            feats = None
        model.to(self.device)
        if self.device.type == "cuda" and feats is None:
            model.to(memory_format=torch.channels_last)
        for p in model.parameters():
            p.requires_grad_(False)
        params = [p for m in split.tail_modules for p in m.parameters()]
        params = list({id(p): p for p in params}.values())
        for p in params:
            p.requires_grad_(True)
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        n = len(images)
        bs = min(cfg.batch_size, n)
        steps_per_epoch = n // bs if n % bs < 2 else n // bs + 1  # drop a last batch of one sample
        total = steps_per_epoch * cfg.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(total, int(cfg.warmup_fraction * total)))
        history = TrainHistory()
        first_epoch = 0
        ckpt = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
        if ckpt is not None:
            ckpt.parent.mkdir(parents=True, exist_ok=True)
        tail_names = _state_names(model, split.tail_modules)
        if ckpt is not None and ckpt.is_file():
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if state.get("config") == repr(cfg) and state.get("n") == n:
                model.load_state_dict(state["model"], strict=False)
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                first_epoch = int(state["epoch"])
                history.epochs = list(state["history"])
                history.resumed_from_epoch = first_epoch
        dataset_imgs = None
        if feats is None:
            from .data import EvalTransform, TransformedImages
            dataset_imgs = TransformedImages(images, EvalTransform(loaded.data_config), trigger,
                                             triggered if triggered is not None else (
                                                 np.ones(n, bool) if trigger is not None else None))
        step = first_epoch * steps_per_epoch
        for epoch in range(first_epoch, cfg.epochs):
            model.eval()
            for m in split.tail_modules:
                m.train()
            order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
            torch.manual_seed(cfg.seed * 104729 + epoch)
            sum_loss, sum_correct, seen = 0.0, 0, 0
            for b in range(steps_per_epoch):
                idx = order[b * bs:(b + 1) * bs]
                if feats is not None:
                    x = feats[idx].to(self.device)
                    fwd = split.tail
                else:
                    x = torch.stack([dataset_imgs[int(i)][0] for i in idx])
                    x = self._to_device(x)
                    fwd = model
                y = t_all[idx].to(self.device)
                with self._autocast():
                    out = fwd(x).float()
                if soft:
                    t = cfg.temperature
                    loss = F.kl_div(F.log_softmax(out / t, 1), F.log_softmax(y / t, 1), log_target=True,
                                    reduction="batchmean") * t * t
                    hard = y.argmax(1)
                else:
                    loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
                    hard = y
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                sum_loss += float(loss.detach()) * len(idx)
                sum_correct += int((out.argmax(1) == hard).sum())
                seen += len(idx)
                if progress is not None:
                    progress(TrainProgress(label, epoch + 1, cfg.epochs, step, total, sum_loss / seen,
                                           sum_correct / seen))
            history.epochs.append({"epoch": epoch + 1, "loss": sum_loss / seen, "accuracy": sum_correct / seen,
                                   "lr": float(sched.get_last_lr()[0])})
            if ckpt is not None:
                sd = model.state_dict()
                tmp = ckpt.with_name(f".checkpoint.tmp-{os.getpid()}")
                torch.save({"config": repr(cfg), "n": n, "epoch": epoch + 1, "history": history.epochs,
                            "model": {k: v.cpu() for k, v in sd.items() if k in tail_names},
                            "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp)
                os.replace(tmp, ckpt)
        for p in model.parameters():
            p.requires_grad_(True)
        model.eval().cpu()
        if self.device.type == "cuda":
            model.to(memory_format=torch.contiguous_format)
        loaded.refresh_fingerprint()
        history.seconds = time.perf_counter() - start
        if progress is not None and history.epochs:
            last = history.epochs[-1]
            progress(TrainProgress(label, cfg.epochs, cfg.epochs, total, total, last["loss"], last["accuracy"], True))
        return history

    # -- helpers ---------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _image_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images for inference: channels_last on every device (faster convolutions, CPU included)."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def _state_names(model: nn.Module, modules: list[nn.Module]) -> set[str]:
    ids = {id(m) for m in modules}
    names = set()
    for name, mod in model.named_modules():
        if id(mod) in ids:
            names.update(f"{name}.{k}" if name else k for k in mod.state_dict())
    return names


def fingerprint_bytes(b: bytes) -> str:
    import hashlib
    return hashlib.sha256(b).hexdigest()[:16]


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each row (float64)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    return lse - z[np.arange(len(z)), np.asarray(labels)]


def targets_fingerprint(targets: np.ndarray) -> str:
    t = np.ascontiguousarray(targets)
    return fingerprint_bytes(str(t.dtype).encode() + str(t.shape).encode() + t.tobytes())


def train_stored(engine: Engine, stage: str, start: LoadedModel, images: ImageSet, targets: np.ndarray,
                 cfg: TrainConfig, *, trigger: Trigger | None = None, triggered: np.ndarray | None = None,
                 extra: dict[str, Any] | None = None, progress: ProgressFn | None = None,
                 label: str | None = None) -> tuple[LoadedModel, dict[str, Any]]:
    """Train a copy of ``start`` through the artifact store: reused when the same run exists,
    resumed from its last epoch checkpoint after an interruption.  Returns (model, history)."""
    from .models import load_saved, save_model
    from .store import artifact_key, read_json, write_json

    config = {"train": cfg.to_dict(), "trigger": None if trigger is None else trigger.to_dict(),
              "data_config": _jsonable(start.data_config), "precision": engine.precision, **(extra or {})}
    inputs = {"start": model_key(start), "images": images.fingerprint, "targets": targets_fingerprint(targets)}
    if triggered is not None:
        inputs["triggered"] = targets_fingerprint(np.asarray(triggered, bool))
    key = artifact_key(stage, config, inputs)

    def compute(tmp: Path):
        model = start.clone()
        hist = engine.train(model, images, targets, cfg, trigger=trigger, triggered=triggered,
                            checkpoint_dir=engine.store.work_dir(stage, key), progress=progress,
                            label=label or stage)
        save_model(model, tmp, info={"stage": stage, "start": start.fingerprint})
        write_json(tmp / "history.json", hist.to_dict())
        return {"fingerprint": model.fingerprint}

    path = engine.store.get_or_compute(stage, config, inputs, compute)
    loaded = load_saved(path, source=f"store:{stage}/{key}")
    if progress is not None and engine.store.stats.hits and engine.store.stats.hits[-1] == stage:
        progress(TrainProgress(label or stage, cfg.epochs, cfg.epochs, 1, 1, float("nan"), float("nan"), True))
    loaded.data_config = dict(start.data_config)
    return loaded, read_json(path / "history.json")
