"""transformers image classifiers (ViT, DeiT, BEiT, Swin, ConvNeXt, ... fine-tuned with the Trainer).

A folder (or a Hub snapshot) with ``config.json`` naming ``architectures: ["...ForImageClassification"]`` and a
``model_type``, ``preprocessor_config.json`` and ``model.safetensors`` or ``pytorch_model.bin``.  Only those files
are read; ``trust_remote_code`` stays off, so a model whose code is not part of transformers is refused.  The
preprocessing comes from the checkpoint's own ``preprocessor_config.json``, translated to the equivalent timm eval
transform (:func:`data_config_from_processor`; a test checks that both give the same pixels), and ``id2label``
becomes the model's class list.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ClassCountMismatchError, CorruptWeightsError, ModelSourceError
from .loaded import LoadedModel, check_input_size, fingerprint_state_dict

PROCESSOR = "preprocessor_config.json"
RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
DEFAULT_LABEL = re.compile(r"LABEL_\d+")


def is_transformers_config(cfg: dict[str, Any]) -> bool:
    """A transformers ``config.json`` (``model_type``), not timm's (``architecture``)."""
    return "model_type" in cfg and "architecture" not in cfg


class TransformersClassifier(nn.Module):
    """A transformers image classifier as a plain ``images -> logits`` module (what the engine runs)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    model: Any  # a transformers PreTrainedModel (its config and heads are dynamic attributes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).logits

    @property
    def num_classes(self) -> int:
        return int(self.model.config.num_labels)

    @num_classes.setter
    def num_classes(self, value: int) -> None:  # timm models carry the attribute; here the config holds it
        if int(value) != self.num_classes:
            raise ValueError("reset_classifier changes the class count of a transformers classifier")

    def classifier(self) -> nn.Linear:
        head = getattr(self.model, "classifier", None)
        if isinstance(head, nn.Sequential):  # e.g. a Sequential(dropout, linear)
            head = next((m for m in reversed(head) if isinstance(m, nn.Linear)), None)
        if not isinstance(head, nn.Linear):
            raise ModelSourceError(f"{type(self.model).__name__}: no linear classifier head found")
        return head

    def reset_classifier(self, num_classes: int) -> None:
        """A fresh ``num_classes`` head (the caller seeds the RNG), as timm's reset_classifier."""
        old = self.classifier()
        new = nn.Linear(old.in_features, num_classes)
        holder = self.model
        if isinstance(holder.classifier, nn.Sequential):
            seq = holder.classifier
            idx = next(i for i, m in enumerate(seq) if m is old)
            seq[idx] = new
        else:
            holder.classifier = new
        cfg = self.model.config
        cfg.num_labels = num_classes
        cfg.id2label = {i: f"LABEL_{i}" for i in range(num_classes)}
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}


def class_names(config) -> list[str] | None:
    """``id2label`` as a class list, or None when it holds only transformers' placeholders (LABEL_0 ...)."""
    id2label = getattr(config, "id2label", None) or {}
    names = [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(int(config.num_labels))]
    return None if all(DEFAULT_LABEL.fullmatch(n) for n in names) else names


def data_config_from_processor(proc: dict[str, Any], *, source: str, input_size: int | None = None) -> dict[str, Any]:
    """The timm-style data config equivalent to an image processor's config (resize, centre crop, mean/std)."""
    size = proc.get("size")
    if isinstance(size, int):
        size = {"shortest_edge": size}
    if not isinstance(size, dict):
        raise ModelSourceError(f"{source}: {PROCESSOR} gives no 'size'; save the image processor with the model")
    crop = proc.get("crop_size")
    crop = {"height": crop, "width": crop} if isinstance(crop, int) else crop
    if "height" in size and "width" in size:  # resized to exactly (height, width): timm's "squash"
        h, w = int(size["height"]), int(size["width"])
        cfg = {"input_size": (3, h, w), "crop_pct": 1.0, "crop_mode": "squash"}
        if proc.get("do_center_crop") and isinstance(crop, dict):
            ch, cw = int(crop["height"]), int(crop["width"])
            cfg = {"input_size": (3, ch, cw), "crop_pct": min(ch / h, cw / w), "crop_mode": "center"}
    elif "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        if "crop_pct" in proc and proc.get("crop_pct") is not None and edge < 384:  # ConvNeXt: resize, then crop
            cfg = {"input_size": (3, edge, edge), "crop_pct": float(proc["crop_pct"]), "crop_mode": "center"}
        elif proc.get("do_center_crop") and isinstance(crop, dict):
            ch = int(crop["height"])
            cfg = {"input_size": (3, ch, int(crop["width"])), "crop_pct": ch / edge, "crop_mode": "center"}
        else:
            cfg = {"input_size": (3, edge, edge), "crop_pct": 1.0, "crop_mode": "center"}
    else:
        raise ModelSourceError(f"{source}: {PROCESSOR}'s size {size} is not one this tool can reproduce (height/width "
                               "or shortest_edge)")
    if proc.get("do_normalize", True):
        mean, std = proc.get("image_mean") or [0.5] * 3, proc.get("image_std") or [0.5] * 3
    else:
        mean, std = [0.0] * 3, [1.0] * 3
    cfg.update(mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
               interpolation=RESAMPLE.get(int(2 if proc.get("resample") is None else proc["resample"]), "bilinear"))
    if input_size is not None:
        cfg["input_size"] = (3, int(input_size), int(input_size))
    cfg["input_size"] = check_input_size(cfg["input_size"])
    return cfg


def _transformers(source: str):
    """The transformers module, quiet (no progress bars or load reports on the console)."""
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise ModelSourceError(f"{source}: a transformers checkpoint needs the transformers package "
                               "(pip install transformers)") from e
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def load_transformers_dir(folder: Path, cfg: dict[str, Any], *, num_classes: int | None, input_size: int | None,
                          source: str, revision: str | None) -> LoadedModel:
    """Load a transformers image classifier from ``folder`` (config, processor config, weights; no remote code)."""
    transformers = _transformers(source)
    archs = [str(a) for a in cfg.get("architectures") or []]
    # a base model (e.g. ViTModel, a foundation) gets transformers' image-classification head, fresh: fine for a
    # foundation (its head is replaced anyway); a victim or suspect must carry its own (its class count is checked)
    head = "trained" if archs and archs[0].endswith("ForImageClassification") else "none in the checkpoint"
    if cfg.get("auto_map"):
        raise ModelSourceError(f"{source}: this checkpoint needs its own code (auto_map in config.json); remote code "
                               "is never run, so it cannot be audited here")
    if str(cfg.get("model_type")) == "timm_wrapper":  # without 'architecture' (else it is read as a timm folder)
        # transformers would hand timm a pretrained_cfg naming files or hub ids of the config's choosing
        raise ModelSourceError(f"{source}: a timm_wrapper config.json without 'architecture'; save the model with "
                               "timm's save_for_hf (config.json names its architecture), or add the timm "
                               "architecture name as 'architecture'")
    proc_path = folder / PROCESSOR
    if not proc_path.is_file():
        raise ModelSourceError(f"{source}: no {PROCESSOR}; save the image processor beside the model "
                               "(processor.save_pretrained(folder)) so that its preprocessing is known")
    try:
        proc = json.loads(proc_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptWeightsError(f"{source}: {PROCESSOR} is not valid JSON ({e})") from e
    weights = next((n for n in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")
                    if (folder / n).is_file()), None)  # a large checkpoint is sharded: its index names the shards
    if weights is None:
        raise ModelSourceError(f"{source}: neither model.safetensors nor pytorch_model.bin in the folder")
    try:
        config = transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=False, local_files_only=True)
    except (ValueError, KeyError, OSError) as e:
        raise ModelSourceError(f"{source}: transformers cannot read its config ({e}); the model type may need a "
                               "newer transformers, or remote code (never run here)") from e
    if num_classes is not None and int(config.num_labels) != num_classes:
        raise ClassCountMismatchError(
            f"{source}: the model has {config.num_labels} classes but {num_classes} were expected; a suspect must "
            "classify the same classes as the victim", expected=num_classes, found=int(config.num_labels))
    try:
        model = transformers.AutoModelForImageClassification.from_pretrained(
            str(folder), config=config, trust_remote_code=False, local_files_only=True,
            use_safetensors=weights != "pytorch_model.bin")
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise CorruptWeightsError(f"{source}: the weights cannot be loaded as a transformers image classifier "
                                  f"({str(e).splitlines()[0][:300]})") from e
    wrapped = TransformersClassifier(model.eval()).eval()
    dcfg = data_config_from_processor(proc, source=source, input_size=input_size)
    shown = "sharded safetensors" if weights.endswith(".index.json") else weights
    extra = {"library": "transformers", "format": shown, "model_type": config.model_type, "_processor": proc}
    if head != "trained":
        extra["head"] = head
    base = getattr(model, model.base_model_prefix, None)
    layers = getattr(base, "layers", None) or getattr(getattr(base, "encoder", None), "layer", None)
    if config.model_type in ("vit", "deit") and layers is not None:
        extra["split"] = (f"{len(layers)} transformer layers: partial fine-tuning trains the last N of them and the "
                          "head on cached activations of the first ones")
    else:
        extra["split"] = "full fine-tuning only (partial fine-tuning: transformers ViT and DeiT)"
    names = class_names(config)
    if names is not None:
        extra["classes"] = names
    return LoadedModel(wrapped, f"transformers:{type(model).__name__}", int(config.num_labels), source,
                       fingerprint_state_dict(wrapped.state_dict()), dcfg, revision=revision, extra=extra)


def save_transformers(loaded: LoadedModel, folder: Path, info: dict[str, Any]) -> None:
    """Write a transformers model as transformers writes it (config, safetensors), its processor config, and what
    this package knows of it (``forensics.json``: the data config, the source, the stage)."""
    from .loaded import jsonable_config

    proc = loaded.extra.get("_processor")
    if proc is None:
        raise ModelSourceError(f"{loaded.source}: no image processor config to save with the model")
    _transformers(loaded.source)
    model: Any = loaded.model
    model.model.save_pretrained(str(folder), safe_serialization=True)
    (folder / PROCESSOR).write_text(json.dumps(proc, indent=2))
    (folder / "forensics.json").write_text(json.dumps({"data_config": jsonable_config(loaded.data_config),
                                                       "source": loaded.source, "fingerprint": loaded.fingerprint,
                                                       **info}, indent=2))
