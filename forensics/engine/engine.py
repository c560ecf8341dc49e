"""The one engine that runs models: the device and precision, batched inference with cached
frozen-prefix activations, and training (the loop itself lives in :mod:`.loop`).

With partial fine-tuning the frozen prefix runs in eval mode and is never augmented, so its
activations are computed once per (prefix weights, image set, transform, trigger) and stored in the
artifact store; training and inference then run only the tail.  On CUDA the engine uses bf16
autocast and channels_last; on the CPU, fp32 (channels_last for inference, measured faster).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch

from ..data.images import ImageSet
from ..data.transforms import Trigger, iter_batches
from ..errors import ConfigError
from ..models import LoadedModel, jsonable_config
from ..models.splitting import Split, split_model
from ..runtime import distributed, settings
from ..runtime.progress import Progress, work
from ..runtime.store import ArtifactStore, artifact_key, fingerprint_array
from .loop import fit
from .recipe import ProgressFn, TrainConfig, TrainHistory


def resolve_device(device: str = "auto") -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for but no GPU is visible; use device='cpu' or 'auto'")
    return torch.device(device)


class Engine:
    """Runs models: cached prefix activations, batched logits, and training."""

    def __init__(self, store: ArtifactStore, *, device: str = "auto", cache_blocks: int | None = 1,
                 batch_size: int | None = None, num_workers: int | None = None):
        self.store = store
        # under torchrun: this worker's GPU, and the process group joined (see :mod:`forensics.runtime.distributed`)
        self.device = distributed.local_device(resolve_device(device))
        self.world = distributed.init(self.device)
        self.cache_blocks = cache_blocks
        # inference batch: large on a GPU; on a CPU 32 channels_last images run fastest (measured)
        self.batch_size = batch_size or (256 if self.device.type == "cuda" else 32)
        # image decoding and transforms in DataLoader workers: on a GPU the device would otherwise wait for the CPU
        # (measured: ~780 images/s decoded and transformed by one process on a quiet 2-core machine; 40 % MFU of
        # ViT-B/16 full fine-tuning on an H200 needs ~3,800 images/s); results do not depend on it
        self.num_workers = num_workers if num_workers is not None else (
            min(8, os.cpu_count() or 1) if self.device.type == "cuda" else 0)
        self._memory: dict[str, torch.Tensor] = {}
        # where batch-level progress of features and logits goes (a pipeline run sets it; None: nowhere)
        self.progress: Progress | None = None
        # torch's intra-op thread count changes CPU results (reductions split differently): a fixed count makes a
        # run reproducible bit for bit on any machine of the same CPU kind (FORENSICS_CPU_THREADS)
        self.cpu_threads = settings.current().cpu_threads if self.device.type == "cpu" else None

    @contextlib.contextmanager
    def threads(self):
        """Run the block with the engine's CPU thread count.  Set, not restored: a restore from one job thread
        would change the count under another job's feet (every engine of a process asks for the same count)."""
        if self.cpu_threads is not None and torch.get_num_threads() != self.cpu_threads:
            torch.set_num_threads(self.cpu_threads)
        yield

    def _batches(self, what: str, images: ImageSet, loaded: LoadedModel, **kw):
        """:func:`iter_batches`, reporting each batch as work progress."""
        total = -(-len(images) // self.batch_size)
        for i, b in enumerate(iter_batches(images, loaded.data_config, self.batch_size,
                                           num_workers=self.num_workers, **kw)):
            yield b
            work(self.progress, what, i + 1, total)

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
            trig_cfg = {"trigger": trigger.to_dict(), "rows": fingerprint_array(np.asarray(triggered, bool))}
        config = {"data_config": jsonable_config(loaded.data_config), "trigger": trig_cfg, "precision": self.precision}
        inputs = {"prefix": f"{loaded.arch}:{split.prefix_fingerprint(loaded.model)}", "images": images.fingerprint}
        mem_key = artifact_key("activations", config, inputs)
        if mem_key in self._memory:
            return self._memory[mem_key]
        if trigger is not None and not np.asarray(triggered, bool).all():
            # some rows stamped (the poisoned shadow's D_s): the clean set's rows, with the stamped rows run alone
            rows = np.flatnonzero(np.asarray(triggered, bool))
            feats = self.activations(loaded, split, images).clone()
            if len(rows):
                feats[torch.from_numpy(rows)] = self.activations(loaded, split, images.subset(rows), trigger=trigger)
            self._memory[mem_key] = feats
            return feats
        if trigger is None and not self.store.has("activations", mem_key):
            sliced = self._origin_activations(config, inputs["prefix"], images)
            if sliced is not None:
                self._memory[mem_key] = sliced
                return sliced

        def compute(tmp: Path):
            model = loaded.model.to(self.device, memory_format=torch.channels_last).eval()  # type: ignore[call-overload]
            outs = []
            with torch.inference_mode(), self.autocast():
                for x, _ in self._batches(f"frozen features of {len(images)} images", images, loaded,
                                          trigger=trigger, triggered=triggered):
                    outs.append(split.prefix(self._image_input(x)).float().cpu().contiguous())
            model.to("cpu", memory_format=torch.contiguous_format)
            np.save(tmp / "activations.npy", torch.cat(outs).numpy())

        with self.threads():
            path = self.store.get_or_compute("activations", config, inputs, compute)
        feats = torch.from_numpy(np.load(path / "activations.npy"))
        self._memory[mem_key] = feats
        return feats

    def _origin_activations(self, config: dict, prefix: str, images: ImageSet) -> torch.Tensor | None:
        """A set's activations as rows of the sets it was cut from (:meth:`ImageSet.origins`), where those are
        already in memory or in the store: the reference and benign shadows, D_s and the members are parts of the
        private data, the query set rows of the private and held-out data, which run the frozen prefix once.  None
        where some origin's are not there (computing a whole origin for a part could cost more than the part) or its
        fingerprint is not known yet (hashing a large origin to find out would)."""
        origins = images.origins()
        if not origins or any(not root.fingerprinted for root, _, _ in origins):
            return None
        pieces = []
        for root, at, rows in origins:
            key = artifact_key("activations", config, {"prefix": prefix, "images": root.fingerprint})
            feats = self._memory.get(key)
            if feats is None:
                if not self.store.has("activations", key):
                    return None
                feats = torch.from_numpy(np.load(self.store.path("activations", key) / "activations.npy"))
                if len(feats) != len(root):
                    return None
                self._memory[key] = feats
            pieces.append((at, feats, rows))
        self.store.stats.hits["activations"] += 1
        if len(pieces) == 1:
            return pieces[0][1][torch.from_numpy(pieces[0][2])]
        out = pieces[0][1].new_empty((len(images), *pieces[0][1].shape[1:]))
        for at, feats, rows in pieces:
            out[torch.from_numpy(at)] = feats[torch.from_numpy(rows)]
        return out

    def recalibrate_norm(self, loaded: LoadedModel, images: ImageSet) -> int:
        """Re-estimate every BatchNorm layer's running statistics on ``images`` in place (one pass, eval transform,
        a cumulative average, no gradient): what moves a copy's normalisation statistics to another party's data.
        Returns the number of layers changed (0: the model has no BatchNorm)."""
        model = loaded.model
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                 and m.track_running_stats]
        if not norms:
            return 0
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None   # cumulative average over the pass
        try:
            with self.threads():
                model.to(self.device).train()
                with torch.no_grad():
                    for x, _ in self._batches(f"normalisation statistics of {len(images)} images", images, loaded):
                        model(self._image_input(x))
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            model.to("cpu").eval()
        loaded.refresh_fingerprint()
        return len(norms)

    # -- inference -------------------------------------------------------------------------
    def logits(self, loaded: LoadedModel, images: ImageSet, *, trigger: Trigger | None = None,
               triggered: np.ndarray | None = None) -> np.ndarray:
        """Eval-mode logits (N, K) in row order; stored, so a model is run once per image set."""
        if trigger is not None and triggered is None:
            triggered = np.ones(len(images), bool)
        config, inputs = self._logits_entry(loaded, images, trigger, triggered)

        def compute(tmp: Path):
            np.save(tmp / "logits.npy", self._run_logits(loaded, images, trigger, triggered))

        with self.threads():
            path = self.store.get_or_compute("logits", config, inputs, compute)
        return np.load(path / "logits.npy")

    def logits_key(self, loaded: LoadedModel, images: ImageSet) -> str:
        """What identifies :meth:`logits` of ``loaded`` on ``images`` (its store key): the model, the images, the
        preprocessing, the precision and the cached prefix.  A run trained on those logits is keyed by this, not by
        their bytes, which differ in the last bits from one CPU kind to another (a shipped distilled run must match
        on every machine)."""
        return artifact_key("logits", *self._logits_entry(loaded, images, None, None))

    def _logits_entry(self, loaded: LoadedModel, images: ImageSet, trigger: Trigger | None,
                      triggered: np.ndarray | None) -> tuple[dict, dict]:
        config = {"data_config": jsonable_config(loaded.data_config),
                  "trigger": None if trigger is None else trigger.to_dict(),
                  "rows": None if triggered is None else fingerprint_array(np.asarray(triggered, bool)),
                  "precision": self.precision, "cache_blocks": self.cache_blocks}
        return config, {"model": loaded.key, "images": images.fingerprint}

    def _run_logits(self, loaded: LoadedModel, images: ImageSet, trigger: Trigger | None,
                    triggered: np.ndarray | None) -> np.ndarray:
        model = loaded.model.eval()
        try:
            split = split_model(model, self.cache_blocks)
        except ConfigError:  # an architecture without a registered prefix: the whole forward pass
            split = split_model(model, None)
        outs = []
        if split.family != "full":
            feats = self.activations(loaded, split, images, trigger=trigger, triggered=triggered)
            model.to(self.device)
            with torch.inference_mode(), self.autocast():
                for i in range(0, len(feats), self.batch_size):
                    outs.append(split.tail(feats[i:i + self.batch_size].to(self.device)).float().cpu())
        else:
            model.to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]
            with torch.inference_mode(), self.autocast():
                for x, _ in self._batches(f"outputs on {len(images)} images", images, loaded,
                                          trigger=trigger, triggered=triggered):
                    outs.append(model(self._image_input(x)).float().cpu())
        model.to("cpu", memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        return torch.cat(outs).numpy().astype(np.float32)

    # -- training --------------------------------------------------------------------------
    def train(self, loaded: LoadedModel, images: ImageSet, targets: np.ndarray, cfg: TrainConfig, *,
              trigger: Trigger | None = None, triggered: np.ndarray | None = None,
              checkpoint_dir: Path | None = None, progress: ProgressFn | None = None,
              label: str = "training") -> TrainHistory:
        """Fine-tune ``loaded.model`` in place; see :func:`forensics.engine.loop.fit`."""
        with self.threads():
            return fit(self, loaded, images, targets, cfg, trigger=trigger, triggered=triggered,
                       checkpoint_dir=checkpoint_dir, progress=progress, label=label)

    # -- devices ---------------------------------------------------------------------------
    def autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _image_input(self, x: torch.Tensor) -> torch.Tensor:
        """Images for inference: channels_last on every device (faster convolutions, CPU included)."""
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        """Training inputs: channels_last on CUDA only."""
        x = x.to(self.device, non_blocking=True)
        if self.device.type == "cuda" and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x
