"""Source strings, resolved in one place (as timm parses model names in one function).

A model source is one of

* ``hf-hub:ORG/NAME`` or ``hf-hub:ORG/NAME@REVISION`` - a timm model on the Hugging Face Hub; only
  ``config.json`` and the weights are fetched, no code runs; the commit it resolved to is recorded;
* ``local-dir:/path`` (or a plain folder path) - ``config.json`` + ``model.safetensors`` as written by
  ``timm.models.save_for_hf``;
* a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file plus a timm architecture (``arch``);
* ``demo:foundation``, ``demo:victim`` or ``demo:<suspect>`` - the embedded offline demo.

A data source is a folder with one subfolder per class, or ``demo:<split>``.  Answers of a black-box
suspect are ``.csv`` / ``.npy`` files (:mod:`forensics.answers`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import demo_assets
from .attacks import Kind
from .data import ImageSet
from .datasources import load_data_source
from .errors import ConfigError, ModelSourceError
from .models import (
    WEIGHT_SUFFIXES,
    LoadedModel,
    foundation_from_weights,
    load_hub_model,
    load_local_dir,
    load_weights_file,
)
from .models import as_foundation as _as_foundation
from .progress import Progress

if TYPE_CHECKING:
    from .audit import Audit
    from .engine import Engine
    from .spec import AuditSpec

HUB, LOCAL_DIR, DEMO = "hf-hub:", "local-dir:", "demo:"
ANSWER_SUFFIXES = (".csv", ".npy")
SourceKind = Literal["hub", "local-dir", "file", "demo"]


@dataclass(frozen=True)
class ModelSource:
    """A parsed model source."""

    kind: SourceKind
    target: str                 # Hub repo id, folder, file path, or demo key
    revision: str | None = None

    def __str__(self) -> str:
        if self.kind == "hub":
            return f"{HUB}{self.target}" + (f"@{self.revision}" if self.revision else "")
        if self.kind == "local-dir":
            return f"{LOCAL_DIR}{self.target}"
        if self.kind == "demo":
            return f"{DEMO}{self.target}"
        return self.target


def parse_model_source(text: str, revision: str | None = None) -> ModelSource:
    """What kind of model ``text`` names; ``revision`` (for Hub ids) wins over an ``@REV`` suffix."""
    if not isinstance(text, str) or not text.strip():
        raise ModelSourceError("empty model source; give hf-hub:ORG/NAME, local-dir:PATH or a weights file")
    text = text.strip()
    if text.startswith(HUB):
        repo_id, _, rev = text[len(HUB):].partition("@")
        return ModelSource("hub", repo_id, revision or rev or None)
    if text.startswith(LOCAL_DIR):
        return ModelSource("local-dir", str(Path(text[len(LOCAL_DIR):]).expanduser()))
    if text.startswith(DEMO):
        return ModelSource("demo", text[len(DEMO):])
    path = Path(text).expanduser()
    if path.is_dir():
        return ModelSource("local-dir", str(path))
    if path.suffix in WEIGHT_SUFFIXES:
        return ModelSource("file", str(path))
    raise ModelSourceError(
        f"cannot tell what model source {text!r} is; give hf-hub:ORG/NAME[@REV], local-dir:PATH, "
        "a .safetensors/.pth file with an architecture, or demo:foundation"
    )


def is_demo(text: str | None) -> bool:
    return isinstance(text, str) and text.strip().startswith(DEMO)


def is_answers_file(text: str | Path) -> bool:
    """True for a black-box suspect's answers (``.csv`` / ``.npy``), which are not model sources."""
    return Path(str(text)).suffix.lower() in ANSWER_SUFFIXES and not str(text).startswith((HUB, LOCAL_DIR, DEMO))


def known_kind(source: str) -> Kind | None:
    """'stolen' / 'innocent' when the source is a demo suspect (its ground truth is known), else None."""
    if not is_demo(source):
        return None
    s = demo_assets.SUSPECTS_BY_KEY.get(source.strip()[len(DEMO):])
    return s.kind if s else None


def _demo_only(src: ModelSource, allowed: str, hint: str) -> None:
    if src.target != allowed:
        raise ModelSourceError(f"{src}: {hint}")


def load_model(source: str, *, arch: str | None = None, num_classes: int | None = None,
               revision: str | None = None, input_size: int | None = None, seed: int = 0) -> LoadedModel:
    """Load a ready model from any source that needs no training (``demo:foundation`` included)."""
    src = parse_model_source(source, revision)
    if src.kind == "hub":
        return load_hub_model(src.target, revision=src.revision, num_classes=num_classes, input_size=input_size)
    if src.kind == "local-dir":
        source = source.strip() if source.strip().startswith(LOCAL_DIR) else f"{LOCAL_DIR}{src.target}"
        return load_local_dir(Path(src.target), num_classes=num_classes, input_size=input_size, source=source)
    if src.kind == "file":
        return load_weights_file(Path(src.target), arch=arch, num_classes=num_classes, input_size=input_size)
    _demo_only(src, "foundation", "the demo's victim and suspects are trained by an audit: open the demo audit "
                                  "(AuditSpec.demo()) and verify demo:<suspect> against it")
    return demo_assets.demo_foundation(num_classes or demo_assets.NUM_CLASSES, input_size=input_size, seed=seed)


def load_foundation(source: str, num_classes: int, *, arch: str | None = None, revision: str | None = None,
                    input_size: int | None = None, seed: int = 0) -> LoadedModel:
    """The pre-trained model the victim was fine-tuned from, with a fresh, seeded ``num_classes`` head.

    Hub ids and folders keep their own head size while loading; a weights file is loaded into
    ``arch`` without its classifier weights (whatever their class count)."""
    src = parse_model_source(source, revision)
    if src.kind == "demo":
        if src.target == demo_assets.OTHER_FOUNDATION[len(DEMO):]:
            return demo_assets.other_foundation(num_classes, input_size=input_size, seed=seed)
        _demo_only(src, "foundation", "the demo foundations are demo:foundation (EfficientNet-Lite0) and "
                                      f"{demo_assets.OTHER_FOUNDATION} (EfficientNet-Lite1)")
        return demo_assets.demo_foundation(num_classes, input_size=input_size, seed=seed)
    if src.kind == "file":
        return foundation_from_weights(Path(src.target), num_classes, arch=arch, input_size=input_size, seed=seed)
    return _as_foundation(load_model(source, revision=revision, input_size=input_size), num_classes, seed=seed)


def load_data(source: str, *, quick: bool = False, classes: list[str] | None = None) -> ImageSet:
    """``demo:<split>``, or any data source of :mod:`forensics.datasources` (an image folder, a saved Hugging Face
    dataset and its split, a parquet / arrow file, an imagefolder with metadata, a CSV of paths and labels)."""
    if is_demo(source):
        return demo_assets.demo_split(source.strip()[len(DEMO):], quick)
    return load_data_source(source, classes=classes)


def data_classes(source: str, *, quick: bool = False) -> list[str]:
    """The class names of a data source."""
    return load_data(source, quick=quick).classes


def check_class_names(model: LoadedModel, classes: list[str], what: str) -> None:
    """A model that names its classes (a transformers checkpoint's ``id2label``) must name the data's, in order."""
    names = model.extra.get("classes")
    if not names or list(names) == list(classes):
        return
    if sorted(names) == sorted(classes):
        raise ConfigError(f"{what} {model.source} names the data's classes in another order ({names[:6]}... vs the "
                          f"data's {classes[:6]}...): its outputs would be read as the wrong classes. Give the data "
                          "in the model's order (e.g. a dataset with the same ClassLabel names)")
    only_model, only_data = sorted(set(names) - set(classes)), sorted(set(classes) - set(names))
    raise ConfigError(f"{what} {model.source} classifies other classes than the data holds (only the model: "
                      f"{only_model[:8]}; only the data: {only_data[:8]}); audit it with the data it was trained on")


def open_models(spec: "AuditSpec", engine: "Engine", private: ImageSet,
                progress: Progress | None = None) -> tuple[LoadedModel, LoadedModel]:
    """The victim and its foundation (with a fresh head of the data's class count) of ``spec``."""
    k = private.num_classes
    victim_src = parse_model_source(spec.victim, spec.victim_revision)
    if victim_src.kind == "demo":
        _demo_only(victim_src, "victim", "the demo's victim is demo:victim")
        foundation = load_foundation(spec.foundation, k, arch=spec.arch, revision=spec.foundation_revision,
                                     input_size=spec.input_size or demo_assets.INPUT_SIZE, seed=spec.config.seed)
        victim = demo_assets.demo_victim(engine, foundation, private, seed=spec.config.seed, quick=spec.quick,
                                         progress=progress)
        return victim, foundation
    victim = load_model(spec.victim, arch=spec.arch, num_classes=k, revision=spec.victim_revision,
                        input_size=spec.input_size)
    foundation = load_foundation(spec.foundation, k, arch=spec.arch or victim.arch, revision=spec.foundation_revision,
                                 input_size=spec.input_size, seed=spec.config.seed)
    foundation.data_config = dict(victim.data_config)
    check_class_names(victim, private.classes, "the victim")
    if foundation.arch != victim.arch:
        raise ModelSourceError(f"the foundation is a {foundation.arch} but the victim a {victim.arch}; give the "
                               "foundation the victim was fine-tuned from")
    return victim, foundation


def load_suspect(audit: "Audit", source: str, *, revision: str | None = None,
                 progress: Progress | None = None) -> LoadedModel:
    """A suspect model from any model source, or a demo suspect (``demo:fine_tune`` ...)."""
    spec = audit.spec
    src = parse_model_source(source, revision)
    if src.kind == "demo":
        return demo_assets.demo_suspect(src.target, audit.victim, audit.foundation, audit.engine,
                                        seed=audit.config.seed, quick=spec.quick, progress=progress)
    m = load_model(source, arch=spec.arch or audit.victim.arch, num_classes=audit.num_classes, revision=revision,
                   input_size=spec.input_size)
    # a bare weights file says nothing of its preprocessing: query it as the victim is queried (the architecture's
    # default input size would be wrong for a victim fine-tuned at another size: a copy would go unnoticed)
    if spec.input_size or (src.kind == "file" and m.arch == audit.victim.arch):
        m.data_config = dict(audit.victim.data_config)
    check_class_names(m, audit.private.classes, "the suspect")
    return m


def check_suspect(spec: "AuditSpec", source: str, *, revision: str | None = None,
                  victim_arch: str | None = None) -> dict | None:
    """Check a suspect source before an audit runs: its model card, or None for a demo suspect (which
    the audit trains).  Raises the same clear errors as loading it would."""
    src = parse_model_source(source, revision)
    if src.kind == "demo":
        if src.target not in demo_assets.SUSPECTS_BY_KEY:
            raise ConfigError(f"unknown demo suspect {src.target!r}; choose one of "
                              f"{sorted(demo_assets.SUSPECTS_BY_KEY)}")
        return None
    k = len(data_classes(spec.data, quick=spec.quick))
    arch = spec.arch or victim_arch or (demo_assets.ARCH if spec.is_demo else None)
    model = load_model(source, arch=arch, num_classes=k, revision=revision, input_size=spec.input_size)
    check_class_names(model, data_classes(spec.data, quick=spec.quick), "the suspect")
    return model.card()


def evaluation_data(spec: "AuditSpec", audit: "Audit") -> tuple[ImageSet | None, str]:
    """The labelled images that model cards report accuracy on: the demo's test split, or the held-out data."""
    if spec.is_demo:
        return demo_assets.demo_split("test", spec.quick), "demo test set"
    return audit.heldout, "held-out set"
