"""The ``demo:`` source scheme: the embedded offline demo's sources, registered with
:func:`forensics.audit.sources.register_source_scheme` when this package is imported.

* models: ``demo:foundation`` (ImageNet EfficientNet-Lite0), ``demo:lite1`` (Lite1, another foundation);
* the victim ``demo:victim``: trained by the audit from the foundation (first run; then read from the store);
* suspects ``demo:<key>`` of :data:`~forensics.demo.assets.DEMO_SUSPECTS`: made from the victim or the foundation
  by their attack; their ground truth is known;
* data ``demo:<split>``: private, heldout, aux, innocent, test.
"""
from __future__ import annotations

from ..audit.sources import ModelSource, SourceScheme, load_foundation, register_source_scheme
from ..audit.spec import AuditSpec
from ..audit.verdict import Kind
from ..data.images import ImageSet
from ..engine.engine import Engine
from ..errors import ConfigError, ModelSourceError
from ..models import LoadedModel
from ..runtime.progress import Progress
from . import assets, shipped

DEMO = "demo:"


def is_demo(text: str | None) -> bool:
    """True for a ``demo:`` source."""
    return isinstance(text, str) and text.strip().startswith(DEMO)


def _only(src: ModelSource, allowed: str, hint: str) -> None:
    if src.target != allowed:
        raise ModelSourceError(f"{src}: {hint}")


class DemoScheme(SourceScheme):
    """``demo:...``: the embedded offline demo's foundations, victim, suspects and data."""

    prefix, kind = DEMO, "demo"

    def model(self, src: ModelSource, *, arch: str | None, num_classes: int | None, input_size: int | None,
              seed: int) -> LoadedModel:
        _only(src, "foundation", "the demo's victim and suspects are trained by an audit: open the demo audit "
                                 "(forensics.demo_spec()) and verify demo:<suspect> against it")
        return assets.demo_foundation(num_classes or assets.NUM_CLASSES, input_size=input_size, seed=seed)

    def foundation(self, src: ModelSource, num_classes: int, *, arch: str | None, input_size: int | None,
                   seed: int) -> LoadedModel:
        if src.target == assets.OTHER_FOUNDATION[len(DEMO):]:
            return assets.other_foundation(num_classes, input_size=input_size, seed=seed)
        _only(src, "foundation", "the demo foundations are demo:foundation (EfficientNet-Lite0) and "
                                 f"{assets.OTHER_FOUNDATION} (EfficientNet-Lite1)")
        return assets.demo_foundation(num_classes, input_size=input_size, seed=seed)

    def data(self, target: str, *, quick: bool, classes: list[str] | None) -> ImageSet:
        return assets.demo_split(target, quick)

    def victim(self, src: ModelSource, spec: AuditSpec, engine: Engine, private: ImageSet,
               progress: Progress | None) -> tuple[LoadedModel, LoadedModel]:
        _only(src, "victim", "the demo's victim is demo:victim")
        size = spec.input_size or assets.INPUT_SIZE
        if spec.foundation.strip() == "demo:foundation":  # read from the store after the first run (no timm needed)
            foundation = assets.stored_demo_foundation(engine.store, private.num_classes, input_size=size,
                                                       seed=spec.config.seed)
        else:
            foundation = load_foundation(spec.foundation, private.num_classes, arch=spec.arch,
                                         revision=spec.foundation_revision, input_size=size, seed=spec.config.seed)
        victim = assets.demo_victim(engine, foundation, private, seed=spec.config.seed, quick=spec.quick,
                                    progress=progress, recipe=spec.config.train)
        return victim, foundation

    def suspect(self, src: ModelSource, spec: AuditSpec, *, victim: LoadedModel, foundation: LoadedModel,
                engine: Engine, progress: Progress | None) -> LoadedModel:
        return assets.demo_suspect(src.target, victim, foundation, engine, seed=spec.config.seed, quick=spec.quick,
                                   progress=progress)

    def makes_suspect(self, src: ModelSource) -> bool:
        if src.target not in assets.SUSPECTS_BY_KEY:
            raise ConfigError(f"unknown demo suspect {src.target!r}; choose one of {sorted(assets.SUSPECTS_BY_KEY)}")
        return True

    def known_kind(self, target: str) -> Kind | None:
        s = assets.SUSPECTS_BY_KEY.get(target)
        return s.kind if s else None

    def victim_arch(self, target: str) -> str | None:
        return assets.ARCH

    def victim_title(self, target: str, spec: AuditSpec) -> str | None:
        if not self.trains(target, spec):
            return "Loading the demo victim (its weights come with the package)"
        return "Training the demo victim (first run only)"

    def trains(self, target: str, spec: AuditSpec) -> bool:
        if target != "victim" and target not in assets.SUSPECTS_BY_KEY:
            return False
        if target != "victim" and assets.SUSPECTS_BY_KEY[target].attack == "direct_copy":
            return False
        return not shipped.covers(spec)

    def evaluation_data(self, spec: AuditSpec) -> tuple[ImageSet, str] | None:
        return assets.demo_split("test", spec.quick), "demo test set"


register_source_scheme(DemoScheme())
