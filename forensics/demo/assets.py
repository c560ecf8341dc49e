"""What the embedded offline demo is made of: real data, a real foundation, the victim's recipe and the suspects'
recipes, and its audit spec (:func:`demo_spec`).  The ``demo:`` source scheme (:mod:`.scheme`) resolves demo sources
from here; the demo runner (:mod:`.runner`) opens the demo's audit with :func:`demo_spec`.

* data: class-balanced Fashion-MNIST subsets (``data/``, MIT, Zalando SE): private 3,000,
  held-out 2,000, auxiliary 3,000, innocent 3,000, test 1,000;
* foundation: ImageNet EfficientNet-Lite0 (:mod:`forensics.models.lite`) at 64 px;
* victim: the foundation fine-tuned on the private split, last stage + head, 6 epochs;
* suspects: four thefts and two innocent models (:data:`DEMO_SUSPECTS`);
* a second victim for the benchmark (:data:`DEMO_VICTIMS` ``lite1``): EfficientNet-Lite1 at 72 px with another
  recipe (8 epochs, learning rate 2e-3, label smoothing 0.1), so that no benchmark number rests on one model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..audit.config import AuditConfig
from ..audit.spec import AuditSpec
from ..audit.verdict import Kind
from ..data.images import ImageSet, concat, synthetic_images
from ..engine.engine import Engine
from ..engine.recipe import TrainConfig
from ..engine.stored import train_stored
from ..errors import ConfigError, DataSourceError
from ..models import LoadedModel, lite, load_lite0_foundation, load_lite_foundation, load_saved, save_model
from ..protocols.registry import DEFAULT_PROTOCOL
from ..runtime.progress import Progress
from ..runtime.store import ArtifactStore
from ..zoo.attacks import get_attack, run_attack

DEMO_DATA = Path(__file__).resolve().parent / "data" / "fashion_mnist_demo.npz"
SPLITS = ("private", "heldout", "aux", "innocent", "test")
ARCH = lite.ARCH           # the foundation's timm architecture (tf_efficientnet_lite0)
INPUT_SIZE = 64
NUM_CLASSES = 10
VICTIM_TRAIN = TrainConfig(epochs=6, lr=1e-3, trainable_blocks=1, batch_size=64)
QUICK_SIZES = {"private": 600, "heldout": 400, "aux": 400, "innocent": 400, "test": 300}


@dataclass(frozen=True)
class DemoSuspect:
    key: str             # demo:<key>
    name: str
    attack: str          # a registered attack (forensics.zoo.attacks)
    data: str            # the demo split it trains on
    train: TrainConfig
    seed_offset: int = 0

    @property
    def kind(self) -> Kind:
        return get_attack(self.attack).kind

    @property
    def source(self) -> str:
        return f"demo:{self.key}"


DEMO_SUSPECTS = (
    DemoSuspect("direct_copy", "direct copy", "direct_copy", "aux", VICTIM_TRAIN),
    DemoSuspect("fine_tune", "fine-tuned copy", "fine_tune", "aux", replace(VICTIM_TRAIN, epochs=3)),
    DemoSuspect("distill", "distilled copy", "distill", "aux", VICTIM_TRAIN),
    DemoSuspect("label_extraction", "label-query extraction", "label_extraction", "aux", VICTIM_TRAIN),
    DemoSuspect("innocent", "innocent (same recipe)", "innocent", "innocent", VICTIM_TRAIN, seed_offset=100),
    DemoSuspect("innocent_long", "innocent (longer, on aux data)", "innocent", "aux",
                replace(VICTIM_TRAIN, epochs=10, lr=2e-3), seed_offset=200),
)
SUSPECTS_BY_KEY = {s.key: s for s in DEMO_SUSPECTS}


@lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    """The demo file's arrays, read once per process and read-only (every ImageSet shares them)."""
    if not DEMO_DATA.is_file():
        raise DataSourceError(f"demo data {DEMO_DATA} is missing; reinstall the package or run "
                              "scripts/make_demo_data.py")
    with np.load(DEMO_DATA, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def demo_split(split: str, quick: bool = False) -> ImageSet:
    """One of the demo's splits; ``quick``: the reduced demo of the tests (its first images)."""
    if split not in SPLITS:
        raise ConfigError(f"unknown demo split {split!r}; choose one of {sorted(SPLITS)}")
    z = _arrays()
    n = QUICK_SIZES[split] if quick else len(z[f"{split}_labels"])
    ids = np.array([f"{split}/{i:05d}" for i in range(n)])
    return ImageSet(split, z[f"{split}_labels"][:n], ids, [str(c) for c in z["classes"]],
                    images=z[f"{split}_images"][:n])


def demo_data(quick: bool = False) -> dict[str, ImageSet]:
    """Every split of the demo (see :func:`demo_split`)."""
    return {split: demo_split(split, quick) for split in SPLITS}


OTHER_FOUNDATION = "demo:lite1"


def other_foundation(num_classes: int = NUM_CLASSES, *, input_size: int | None = INPUT_SIZE,
                     seed: int = 0) -> LoadedModel:
    """``demo:lite1``: ImageNet EfficientNet-Lite1, another pretrained foundation than the victim's (for
    thieves and innocent models that start from another backbone)."""
    return load_lite_foundation(1, num_classes, input_size=input_size, seed=seed, source=OTHER_FOUNDATION)


def zoo_data(quick: bool = False) -> dict[str, ImageSet]:
    """The data a zoo suspect trains on: the thief's auxiliary data, an innocent's own data, half of it, both
    together (6,000 images), and as many synthetic images as the thief's data for data-free distillation."""
    aux, innocent = demo_split("aux", quick), demo_split("innocent", quick)
    half = innocent.subset(np.arange(len(innocent) // 2), "innocent/2")
    return {"aux": aux, "innocent": innocent, "innocent/2": half,
            "innocent+aux": concat([innocent, aux], "innocent+aux"),
            "synthetic": synthetic_images(len(aux), _arrays()["aux_images"].shape[1:], aux.classes)}


@dataclass(frozen=True)
class DemoVictim:
    """One of the demo's victims: its foundation, input size and recipe, and the zoo's other foundation for it."""

    foundation: str
    input_size: int
    train: TrainConfig
    other_foundation: str
    title: str


DEMO_VICTIMS = {
    "lite0": DemoVictim("demo:foundation", INPUT_SIZE, VICTIM_TRAIN, OTHER_FOUNDATION,
                        "EfficientNet-Lite0 at 64 px, last stage + head, 6 epochs lr 1e-3"),
    "lite1": DemoVictim(OTHER_FOUNDATION, 72, TrainConfig(epochs=8, lr=2e-3, trainable_blocks=1, batch_size=64,
                                                           label_smoothing=0.1), "demo:foundation",
                        "EfficientNet-Lite1 at 72 px, last stage + head, 8 epochs lr 2e-3, label smoothing 0.1"),
}


def demo_victim_variant(name: str) -> DemoVictim:
    if name not in DEMO_VICTIMS:
        raise ConfigError(f"unknown demo victim {name!r}; choose one of {sorted(DEMO_VICTIMS)}")
    return DEMO_VICTIMS[name]


def demo_train(quick: bool, victim: str = "lite0") -> TrainConfig:
    train = demo_victim_variant(victim).train
    return replace(train, epochs=3) if quick else train


def demo_audit_config(seed: int = 0, *, quick: bool = False, protocol: str = DEFAULT_PROTOCOL,
                      victim: str = "lite0") -> AuditConfig:
    train = demo_train(quick, victim)
    return AuditConfig(seed=seed, train=train, protocol=protocol, poison_train=replace(train, epochs=2 if quick else 3))


def demo_spec(seed: int = 0, *, quick: bool = False, protocol: str = DEFAULT_PROTOCOL, victim: str = "lite0"
              ) -> AuditSpec:
    """The embedded offline demo's audit (``quick``: the reduced data and epochs of the tests; ``victim``: one of
    :data:`DEMO_VICTIMS`, the demo's own ``lite0`` by default)."""
    v = demo_victim_variant(victim)
    return AuditSpec(victim="demo:victim", foundation=v.foundation, data="demo:private", heldout="demo:heldout",
                     input_size=None if victim == "lite0" else v.input_size, quick=quick,
                     config=demo_audit_config(seed, quick=quick, protocol=protocol, victim=victim))


def demo_foundation(num_classes: int = NUM_CLASSES, *, input_size: int | None = INPUT_SIZE,
                    seed: int = 0) -> LoadedModel:
    """``demo:foundation``: ImageNet EfficientNet-Lite0 with a fresh, seeded ``num_classes`` head."""
    return load_lite0_foundation(num_classes, input_size=input_size, seed=seed)


def stored_demo_foundation(store: ArtifactStore, num_classes: int = NUM_CLASSES, *, input_size: int | None = INPUT_SIZE,
                           seed: int = 0) -> LoadedModel:
    """:func:`demo_foundation` through the artifact store: built once (the ImageNet weights read, the seeded head
    drawn), then read back lazily (:class:`~forensics.models.loaded.StoredModel`), so that a warm demo needs neither
    timm nor the weights package until one of its networks actually runs.  The same weights, fingerprint and
    preprocessing as :func:`demo_foundation`."""
    config = {"weights": lite.WEIGHTS, "num_classes": num_classes, "input_size": input_size, "seed": seed}

    def compute(tmp: Path) -> dict[str, str]:
        built = demo_foundation(num_classes, input_size=input_size, seed=seed)
        save_model(built, tmp, info={"stage": "demo_foundation"})
        return {"fingerprint": built.fingerprint}

    model = load_saved(store.get_or_compute("demo_foundation", config, {}, compute), source="demo:foundation")
    model.extra = {"weights": lite.WEIGHTS, "pretrained_classes": 1000}  # as demo_foundation says it (ImageNet-1k)
    return model


def demo_victim(engine: Engine, foundation: LoadedModel, private: ImageSet, *, seed: int, quick: bool,
                progress: Progress | None = None, recipe: TrainConfig | None = None) -> LoadedModel:
    """The demo's victim: trained (first run) or reused from the store; ``recipe``: the audit's (the victim's) recipe,
    the demo's own by default."""
    victim, _ = train_stored(engine, "demo_victim", foundation, private, private.labels,
                             replace(recipe or demo_train(quick), seed=seed), progress=progress, label="victim")
    victim.source = "demo:victim"
    return victim


def demo_suspect(key: str, victim: LoadedModel, foundation: LoadedModel, engine: Engine, *, seed: int,
                 quick: bool, progress: Progress | None = None) -> LoadedModel:
    """One of :data:`DEMO_SUSPECTS`, made from the victim (or the foundation) by its attack."""
    if key not in SUSPECTS_BY_KEY:
        raise ConfigError(f"unknown demo suspect {key!r}; choose one of {sorted(SUSPECTS_BY_KEY)}")
    s = SUSPECTS_BY_KEY[key]
    cfg = replace(s.train, seed=seed + s.seed_offset, epochs=min(s.train.epochs, 3) if quick else s.train.epochs)
    model = run_attack(s.attack, victim, foundation, demo_split(s.data, quick), engine, cfg, progress=progress)
    model.source = s.source
    return model
