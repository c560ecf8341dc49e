"""Source strings, resolved in one place (as timm parses model names in one function), through a registry of
source schemes that the packages owning them fill.

A model source is one of

* ``hf-hub:ORG/NAME`` or ``hf-hub:ORG/NAME@REVISION`` - a timm or transformers model on the Hugging Face Hub;
  only the config and the weights are fetched, no code runs; the commit it resolved to is recorded;
* ``local-dir:/path`` (or a plain folder path) - ``config.json`` + weights, as written by
  ``timm.models.save_for_hf`` or by transformers;
* a ``.safetensors`` / ``.pth`` / ``.pt`` / ``.bin`` file plus a timm architecture (``arch``);
* a registered scheme's source: ``demo:foundation``, ``demo:victim`` or ``demo:<suspect>`` are the embedded
  offline demo's (:mod:`forensics.demo` registers ``demo:`` when it is imported, which ``import forensics`` does).

A data source is anything :mod:`forensics.data.formats` reads (a folder with one subfolder per class, a saved
dataset, a table...), or a registered scheme's data (``demo:<split>``).  Answers of a black-box suspect are
``.csv`` / ``.npy`` files (:mod:`forensics.audit.answers`).

A scheme (:class:`SourceScheme`) says what its sources can be: ready models, foundations, data, and members of an
audit that it makes itself (the demo trains its victim and suspects); the functions below ask it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from ..data.formats import load_data_source
from ..data.images import ImageSet
from ..engine.engine import Engine
from ..errors import ConfigError, DataSourceError, ModelSourceError
from ..models import (
    WEIGHT_SUFFIXES,
    LoadedModel,
    as_foundation,
    foundation_from_weights,
    load_hub_model,
    load_local_dir,
    load_weights_file,
)
from ..runtime.access import allowed_path
from ..runtime.progress import Progress
from .spec import AuditSpec
from .verdict import Kind

HUB, LOCAL_DIR = "hf-hub:", "local-dir:"
ANSWER_SUFFIXES = (".csv", ".npy")


@dataclass(frozen=True)
class ModelSource:
    """A parsed model source: ``kind`` is a scheme's kind (``hub``, ``local-dir``, ``demo`` ...) or ``file``."""

    kind: str
    target: str                 # Hub repo id, folder, file path, or the scheme's own key
    revision: str | None = None
    given: str = field(default="", compare=False)   # the text as the user gave it

    def __str__(self) -> str:
        if self.kind == "file":
            return self.target
        text = f"{get_source_scheme(self.kind).prefix}{self.target}"
        return text + (f"@{self.revision}" if self.revision else "")


class SourceScheme:
    """What the sources of one prefix are.  A subclass overrides what its sources can be and is registered with
    :func:`register_source_scheme`; what it does not override is refused with a message that says so.

    ``prefix`` is what a source starts with (``"demo:"``), ``kind`` what :class:`ModelSource` calls it."""

    prefix: str = ""
    kind: str = ""

    def parse(self, rest: str, revision: str | None) -> ModelSource:
        """The source after the prefix; ``revision`` is the caller's (only the Hub has revisions)."""
        return ModelSource(self.kind, rest)

    def model(self, src: ModelSource, *, arch: str | None, num_classes: int | None, input_size: int | None,
              seed: int) -> LoadedModel:
        """A ready model (one that needs no training)."""
        raise ModelSourceError(f"{src} is not a model that can be loaded")

    def foundation(self, src: ModelSource, num_classes: int, *, arch: str | None, input_size: int | None,
                   seed: int) -> LoadedModel:
        """A pre-trained model with a fresh, seeded ``num_classes`` head."""
        return as_foundation(self.model(src, arch=None, num_classes=None, input_size=input_size, seed=seed),
                             num_classes, seed=seed)

    def data(self, target: str, *, quick: bool, classes: list[str] | None) -> ImageSet:
        raise DataSourceError(f"{self.prefix}{target} is not a data source")

    def victim(self, src: ModelSource, spec: AuditSpec, engine: Engine, private: ImageSet,
               progress: Progress | None) -> tuple[LoadedModel, LoadedModel] | None:
        """(victim, foundation) when the scheme makes the victim itself; None: load it as a ready model."""
        return None

    def suspect(self, src: ModelSource, spec: AuditSpec, *, victim: LoadedModel, foundation: LoadedModel,
                engine: Engine, progress: Progress | None) -> LoadedModel | None:
        """The suspect when the scheme makes it from the audit's victim or foundation; None: a ready model."""
        return None

    def makes_suspect(self, src: ModelSource) -> bool:
        """True when :meth:`suspect` makes this suspect (checked now; its model card comes after the audit)."""
        return False

    def known_kind(self, target: str) -> Kind | None:
        """'stolen' / 'innocent' when the suspect's ground truth is known (the demo's), else None."""
        return None

    def victim_arch(self, target: str) -> str | None:
        """The architecture of a victim the scheme makes (to load weights-file suspects of it)."""
        return None

    def victim_title(self, target: str, spec: AuditSpec) -> str | None:
        """What the audit's "victim" stage does for this victim, when it is more than loading it."""
        return None

    def trains(self, target: str, spec: AuditSpec) -> bool:
        """Whether making this victim or suspect trains a model on this machine (a progress plan's cost)."""
        return False

    def evaluation_data(self, spec: AuditSpec) -> tuple[ImageSet, str] | None:
        """Labelled images for the model cards' accuracy, when the scheme has its own (else the held-out data)."""
        return None


_SCHEMES: dict[str, SourceScheme] = {}


def register_source_scheme(scheme: SourceScheme) -> SourceScheme:
    """Add a scheme; its prefix and kind must be new."""
    if not scheme.prefix.endswith(":") or not scheme.kind:
        raise ConfigError(f"a source scheme needs a prefix ending in ':' and a kind (got {scheme.prefix!r}, "
                          f"{scheme.kind!r})")
    if any(s.prefix == scheme.prefix or s.kind == scheme.kind for s in _SCHEMES.values()):
        raise ConfigError(f"a source scheme for {scheme.prefix!r} ({scheme.kind}) is already registered")
    _SCHEMES[scheme.kind] = scheme
    return scheme


def list_source_schemes() -> list[SourceScheme]:
    """The registered schemes, in registration order."""
    return list(_SCHEMES.values())


def get_source_scheme(kind: str) -> SourceScheme:
    """The scheme of ``kind`` (``"hub"``, ``"local-dir"``, ``"demo"`` ...)."""
    if kind not in _SCHEMES:
        raise ConfigError(f"unknown source scheme {kind!r}; registered: {sorted(_SCHEMES)}")
    return _SCHEMES[kind]


def _scheme_of(text: str) -> SourceScheme | None:
    return next((s for s in _SCHEMES.values() if text.startswith(s.prefix)), None)


class HubScheme(SourceScheme):
    """``hf-hub:ORG/NAME[@REVISION]``: a model on the Hugging Face Hub (or in its local cache when offline)."""

    prefix, kind = HUB, "hub"

    def parse(self, rest: str, revision: str | None) -> ModelSource:
        repo_id, _, rev = rest.partition("@")
        return ModelSource(self.kind, repo_id, revision or rev or None)

    def model(self, src: ModelSource, *, arch: str | None, num_classes: int | None, input_size: int | None,
              seed: int) -> LoadedModel:
        return load_hub_model(src.target, revision=src.revision, num_classes=num_classes, input_size=input_size)


class LocalDirScheme(SourceScheme):
    """``local-dir:PATH``: a folder with ``config.json`` and weights (timm's ``save_for_hf``, or transformers')."""

    prefix, kind = LOCAL_DIR, "local-dir"

    def parse(self, rest: str, revision: str | None) -> ModelSource:
        return ModelSource(self.kind, str(allowed_path(rest, "model folder")))

    def model(self, src: ModelSource, *, arch: str | None, num_classes: int | None, input_size: int | None,
              seed: int) -> LoadedModel:
        source = src.given if src.given.startswith(LOCAL_DIR) else f"{LOCAL_DIR}{src.target}"
        return load_local_dir(Path(src.target), num_classes=num_classes, input_size=input_size, source=source)


register_source_scheme(HubScheme())
register_source_scheme(LocalDirScheme())


def parse_model_source(text: str, revision: str | None = None) -> ModelSource:
    """What kind of model ``text`` names; ``revision`` (for Hub ids) wins over an ``@REV`` suffix."""
    if not isinstance(text, str) or not text.strip():
        raise ModelSourceError("empty model source; give hf-hub:ORG/NAME, local-dir:PATH or a weights file")
    text = text.strip()
    scheme = _scheme_of(text)
    if scheme is not None:
        return replace(scheme.parse(text[len(scheme.prefix):], revision), given=text)
    path = allowed_path(text, "model source")  # on a shared server: only under its data root
    if path.is_dir():
        return ModelSource("local-dir", str(path), given=text)
    if path.suffix in WEIGHT_SUFFIXES:
        return ModelSource("file", str(path), given=text)
    others = ", ".join(f"{s.prefix}..." for s in _SCHEMES.values() if s.kind not in ("hub", "local-dir"))
    raise ModelSourceError(
        f"cannot tell what model source {text!r} is; give hf-hub:ORG/NAME[@REV], local-dir:PATH, "
        "a .safetensors/.pth file with an architecture" + (f", or {others}" if others else ""))


def is_answers_file(text: str | Path) -> bool:
    """True for a black-box suspect's answers (``.csv`` / ``.npy``), which are not model sources."""
    return Path(str(text)).suffix.lower() in ANSWER_SUFFIXES and _scheme_of(str(text)) is None


def known_kind(source: str) -> Kind | None:
    """'stolen' / 'innocent' when the source's scheme knows the suspect's ground truth (the demo's), else None."""
    scheme = _scheme_of(source.strip()) if isinstance(source, str) else None
    return None if scheme is None else scheme.known_kind(source.strip()[len(scheme.prefix):])


def load_model(source: str, *, arch: str | None = None, num_classes: int | None = None,
               revision: str | None = None, input_size: int | None = None, seed: int = 0) -> LoadedModel:
    """Load a ready model from any source that needs no training (``demo:foundation`` included)."""
    src = parse_model_source(source, revision)
    if src.kind == "file":
        return load_weights_file(Path(src.target), arch=arch, num_classes=num_classes, input_size=input_size)
    return get_source_scheme(src.kind).model(src, arch=arch, num_classes=num_classes, input_size=input_size,
                                             seed=seed)


def load_foundation(source: str, num_classes: int, *, arch: str | None = None, revision: str | None = None,
                    input_size: int | None = None, seed: int = 0) -> LoadedModel:
    """The pre-trained model the victim was fine-tuned from, with a fresh, seeded ``num_classes`` head.

    Hub ids and folders keep their own head size while loading; a weights file is loaded into
    ``arch`` without its classifier weights (whatever their class count)."""
    src = parse_model_source(source, revision)
    if src.kind == "file":
        return foundation_from_weights(Path(src.target), num_classes, arch=arch, input_size=input_size, seed=seed)
    return get_source_scheme(src.kind).foundation(src, num_classes, arch=arch, input_size=input_size, seed=seed)


def load_data(source: str, *, quick: bool = False, classes: list[str] | None = None) -> ImageSet:
    """A registered scheme's data (``demo:<split>``; ``quick``: the reduced demo), or any data source of
    :mod:`forensics.data.formats` (an image folder, a saved Hugging Face dataset and its split, a parquet / arrow
    file, an imagefolder with metadata, a CSV of paths and labels)."""
    scheme = _scheme_of(source.strip()) if isinstance(source, str) else None
    if scheme is not None:
        return scheme.data(source.strip()[len(scheme.prefix):], quick=quick, classes=classes)
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


def open_models(spec: AuditSpec, engine: Engine, private: ImageSet,
                progress: Progress | None = None) -> tuple[LoadedModel, LoadedModel]:
    """The victim and its foundation (with a fresh head of the data's class count) of ``spec``."""
    k = private.num_classes
    victim_src = parse_model_source(spec.victim, spec.victim_revision)
    if victim_src.kind != "file":
        made = get_source_scheme(victim_src.kind).victim(victim_src, spec, engine, private, progress)
        if made is not None:
            return made
    victim = load_model(spec.victim, arch=spec.arch, num_classes=k, revision=spec.victim_revision,
                        input_size=spec.input_size)
    foundation = open_foundation(spec, victim, k)
    check_class_names(victim, private.classes, "the victim")
    return victim, foundation


def open_foundation(spec: AuditSpec, victim: LoadedModel, num_classes: int) -> LoadedModel:
    """The foundation of ``spec`` with a fresh, seeded head of ``num_classes``, checked to be the victim's
    architecture (the Load page calls it too, so a mistyped foundation is refused before an audit is saved)."""
    foundation = load_foundation(spec.foundation, num_classes, arch=spec.arch or victim.arch,
                                 revision=spec.foundation_revision, input_size=spec.input_size, seed=spec.config.seed)
    foundation.data_config = dict(victim.data_config)
    if foundation.arch != victim.arch:
        raise ModelSourceError(f"the foundation is a {foundation.arch} but the victim a {victim.arch}; give the "
                               "foundation the victim was fine-tuned from")
    return foundation


def load_suspect(source: str, spec: AuditSpec, *, victim: LoadedModel, foundation: LoadedModel, engine: Engine,
                 classes: list[str], revision: str | None = None, progress: Progress | None = None) -> LoadedModel:
    """A suspect of the audit of ``spec`` (its victim, foundation and data's ``classes`` given) from any model
    source, or one its scheme makes from the victim (``demo:fine_tune`` ...)."""
    src = parse_model_source(source, revision)
    if src.kind != "file":
        made = get_source_scheme(src.kind).suspect(src, spec, victim=victim, foundation=foundation, engine=engine,
                                                   progress=progress)
        if made is not None:
            return made
    m = load_model(source, arch=spec.arch or victim.arch, num_classes=victim.num_classes, revision=revision,
                   input_size=spec.input_size)
    # a bare weights file says nothing of its preprocessing: query it as the victim is queried (the architecture's
    # default input size would be wrong for a victim fine-tuned at another size: a copy would go unnoticed)
    if spec.input_size or (src.kind == "file" and m.arch == victim.arch):
        m.data_config = dict(victim.data_config)
    check_class_names(m, classes, "the suspect")
    return m


def _victim_scheme(spec: AuditSpec) -> tuple[SourceScheme | None, str]:
    scheme = _scheme_of(spec.victim.strip())
    return scheme, spec.victim.strip()[len(scheme.prefix):] if scheme else ""


def check_suspect(spec: AuditSpec, source: str, *, revision: str | None = None,
                  victim_arch: str | None = None) -> dict | None:
    """Check a suspect source before an audit runs: its model card, or None for a suspect its scheme makes (the
    demo's, which the audit trains).  Raises the same clear errors as loading it would."""
    src = parse_model_source(source, revision)
    if src.kind != "file" and get_source_scheme(src.kind).makes_suspect(src):
        return None
    classes = data_classes(spec.data, quick=spec.quick)
    scheme, target = _victim_scheme(spec)
    arch = spec.arch or victim_arch or (scheme.victim_arch(target) if scheme else None)
    model = load_model(source, arch=arch, num_classes=len(classes), revision=revision, input_size=spec.input_size)
    check_class_names(model, classes, "the suspect")
    return model.card()


def evaluation_data(spec: AuditSpec, heldout: ImageSet | None) -> tuple[ImageSet | None, str]:
    """The labelled images that model cards report accuracy on: the victim scheme's own (the demo's test split),
    or the held-out data."""
    scheme, _ = _victim_scheme(spec)
    own = scheme.evaluation_data(spec) if scheme else None
    return own if own is not None else (heldout, "held-out set")


def victim_title(spec: AuditSpec) -> str:
    """What the audit's "victim" stage does, in a progress view's words."""
    scheme, target = _victim_scheme(spec)
    return (scheme.victim_title(target, spec) if scheme else None) or "Loading the victim and its foundation"


def makes_training(source: str, spec: AuditSpec) -> bool:
    """Whether making ``source`` (a victim or suspect its scheme makes, the demo's) trains a model on this machine:
    what a progress plan weighs its stage by."""
    scheme = _scheme_of(source.strip()) if isinstance(source, str) else None
    return scheme is not None and scheme.trains(source.strip()[len(scheme.prefix):], spec)
