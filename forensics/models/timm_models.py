"""timm classifiers: built from an architecture name, loaded from folders and weights files, saved.

A folder is what ``timm.models.save_for_hf`` writes (and what this package writes for every model it
trains): ``config.json`` naming the architecture, plus ``model.safetensors`` or ``pytorch_model.bin``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import ClassCountMismatchError, CorruptWeightsError, ModelSourceError
from .hf_transformers import TransformersClassifier, is_transformers_config, load_transformers_dir, save_transformers
from .loaded import LoadedModel, StoredModel, data_config_for, fingerprint_state_dict, jsonable_config
from .weights import read_weights

# config.json arguments that would make timm fetch or read other weights: only the weights we read
# ourselves are loaded
UNSAFE_MODEL_ARGS = {"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path", "cache_dir"}


def classifier_out_features(model: nn.Module) -> int | None:
    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Linear):
        return head.out_features
    return getattr(model, "num_classes", None)


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


def create_timm_model(arch: str, num_classes: int, model_args: dict | None = None, source: str = "") -> nn.Module:
    """``timm.create_model(arch, pretrained=False)`` with clear errors and untrusted arguments dropped."""
    import timm

    if not isinstance(arch, str) or ":" in arch or "/" in arch:
        raise ModelSourceError(f"{source or arch}: {arch!r} is not a timm architecture name (no hub ids or paths here)")
    if model_args is not None and not isinstance(model_args, dict):
        raise ModelSourceError(f"{source or arch}: model_args in config.json must be an object")
    # timm's save_for_hf records num_classes inside model_args too; the argument wins
    kwargs = {k: v for k, v in (model_args or {}).items() if k not in UNSAFE_MODEL_ARGS}
    kwargs["num_classes"] = num_classes
    try:
        return timm.create_model(arch, pretrained=False, **kwargs)
    except RuntimeError as e:
        raise ModelSourceError(
            f"unknown timm architecture {arch!r}; see timm.list_models() for the names ({e})"
        ) from e
    except (TypeError, ValueError, AttributeError, KeyError) as e:
        raise ModelSourceError(f"{source or arch}: timm cannot build {arch!r} with the arguments in config.json "
                               f"({e})") from e


def build_model(arch: str, num_classes: int, state: dict[str, torch.Tensor] | None = None,
                model_args: dict | None = None, source: str = "") -> nn.Module:
    """Create a timm architecture and load ``state`` strictly, with clear errors."""
    model = create_timm_model(arch, num_classes, model_args, source)
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


def fresh_model(arch: str, num_classes: int, *, seed: int, input_size: int | None = None,
                source: str | None = None) -> LoadedModel:
    """A timm architecture with seeded random weights (a model trained from scratch starts here)."""
    from ..runtime.rng import RNG_LOCK

    with RNG_LOCK, torch.random.fork_rng(devices=[]):  # seeded, the caller's RNG untouched
        torch.manual_seed(seed)
        model = create_timm_model(arch, num_classes).eval()
    return LoadedModel(model, arch, num_classes, source or f"scratch:{arch}",
                       fingerprint_state_dict(model.state_dict()), data_config_for(model, input_size),
                       extra={"init": f"random, seed {seed}"})


def load_weights_file(path: Path, *, arch: str | None, num_classes: int | None,
                      input_size: int | None = None) -> LoadedModel:
    """A ``.safetensors`` / ``.pth`` state dict loaded into the timm architecture ``arch``."""
    if not arch or not num_classes:
        raise ModelSourceError(
            f"{path.name}: a weights file needs its timm architecture and class count "
            "(arch='vit_base_patch16_224', num_classes=10; on the CLI --arch and --num-classes)"
        )
    state = read_weights(path)
    model = build_model(arch, num_classes, state, source=str(path))
    return LoadedModel(model, arch, num_classes, str(path), fingerprint_state_dict(model.state_dict()),
                       data_config_for(model, input_size))


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
    if is_transformers_config(cfg):
        return load_transformers_dir(folder, cfg, num_classes=num_classes, input_size=input_size, source=source,
                                     revision=revision)
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
    declared = "num_classes" in cfg or "num_classes" in (cfg.get("pretrained_cfg") or {})
    if not k and not declared:
        raise ModelSourceError(f"{source}: config.json gives no num_classes; pass num_classes")
    # num_classes 0: a headless tower (e.g. a CLIP image tower), a foundation that gets its head from the audit
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
    # the architecture's arguments (a ViT's img_size ...) travel with the model: a shadow saved in the store
    # must be built with them again
    args = {a: v for a, v in (cfg.get("model_args") or {}).items() if a not in UNSAFE_MODEL_ARGS | {"num_classes"}}
    return LoadedModel(model, arch, k, source, fingerprint_state_dict(model.state_dict()), dcfg,
                       revision=revision, extra={"library": "timm", "format": name,
                                                 **({"_model_args": args} if args else {}),
                                                 **{k2: cfg[k2] for k2 in ("forensics",) if k2 in cfg}})


def save_model(loaded: LoadedModel, folder: Path, *, info: dict | None = None) -> None:
    """Write ``config.json`` + ``model.safetensors`` (loadable with ``local-dir:`` and by timm)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(loaded.model, TransformersClassifier):
        return save_transformers(loaded, folder, info or {})
    state = {k: v.detach().cpu().contiguous() for k, v in loaded.model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    dcfg = jsonable_config(loaded.data_config)
    cfg = {
        "architecture": loaded.arch,
        "num_classes": loaded.num_classes,
        "data_config": dcfg,
        "pretrained_cfg": {"architecture": loaded.arch, "num_classes": loaded.num_classes, **dcfg},
        **({"model_args": loaded.extra["_model_args"]} if loaded.extra.get("_model_args") else {}),
        "forensics": {"source": loaded.source, "fingerprint": loaded.fingerprint, **(info or {})},
    }
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))


DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def load_saved(folder: Path, source: str) -> LoadedModel:
    """A model this package saved, keeping its recorded source name.  A timm model this package wrote with its
    fingerprint comes back as a :class:`~.loaded.StoredModel`: its weights are read (and checked against the
    fingerprint) only when the network is first used; everything else is read from ``config.json`` now."""
    folder = Path(folder)
    try:
        cfg = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        cfg = None
    recorded = cfg.get("forensics") if isinstance(cfg, dict) else None
    saved = cfg.get("data_config") if isinstance(cfg, dict) else None
    if (isinstance(recorded, dict) and isinstance(recorded.get("fingerprint"), str) and isinstance(saved, dict)
            and all(k in saved for k in DATA_CONFIG_KEYS) and isinstance(cfg.get("architecture"), str)
            and not is_transformers_config(cfg) and (folder / "model.safetensors").is_file()):
        fingerprint = recorded["fingerprint"]
        args = {a: v for a, v in (cfg.get("model_args") or {}).items() if a not in UNSAFE_MODEL_ARGS | {"num_classes"}}

        def load() -> nn.Module:
            m = load_local_dir(folder, source=source)
            if m.fingerprint != fingerprint:
                raise CorruptWeightsError(f"{source}: the weights in {folder} are not the ones recorded (fingerprint "
                                          f"{m.fingerprint[:12]}, recorded {fingerprint[:12]}); delete that store "
                                          "entry and re-run")
            return m.model

        return StoredModel(None, cfg["architecture"], int(cfg.get("num_classes") or 0), source, fingerprint,
                           {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()},
                           extra={"library": "timm", "format": "model.safetensors",
                                  **({"_model_args": args} if args else {})}, load=load)
    m = load_local_dir(folder, source=source)
    m.extra.pop("forensics", None)
    own = Path(folder) / "forensics.json"  # a transformers model: the data config this package used
    if own.is_file():
        dcfg = json.loads(own.read_text())["data_config"]
        m.data_config = {k: tuple(v) if isinstance(v, list) else v for k, v in dcfg.items()}
    return m
