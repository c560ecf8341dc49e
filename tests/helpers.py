"""Helpers shared by the test modules: tiny timm models and toy images (no files, built in milliseconds)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from forensics.data.images import ImageSet
from forensics.data.transforms import iter_batches
from forensics.engine.recipe import TrainConfig
from forensics.models import LoadedModel, data_config_for, fingerprint_state_dict

ROOT = Path(__file__).resolve().parent.parent
INPUT = 32  # side length the tiny models see


def toy_images(n: int = 90, seed: int = 0, name: str = "toy") -> ImageSet:
    """Grayscale 28x28 uint8 images whose class is their brightness band (dark / mid / bright)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    base = np.array([40, 128, 215])[labels]
    x = np.clip(base[:, None, None] + rng.integers(-30, 31, (n, 28, 28)), 0, 255).astype(np.uint8)
    return ImageSet(name, labels, [f"{name}/{i:03d}" for i in range(n)], ["dark", "mid", "bright"], images=x)


def make_loaded(arch: str = "test_efficientnet", seed: int = 0, num_classes: int = 3, **kwargs) -> LoadedModel:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, num_classes=num_classes, **kwargs).eval()
    return LoadedModel(model, arch, num_classes, f"test:{arch}", fingerprint_state_dict(model.state_dict()),
                       data_config_for(model, input_size=INPUT))


def forward_all(loaded: LoadedModel, images: ImageSet) -> np.ndarray:
    model = loaded.model.eval()
    with torch.no_grad():
        return torch.cat([model(x) for x, _ in iter_batches(images, loaded.data_config, 64)]).numpy()


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert different == [], f"tensors differ: {different[:5]}"


def states_differ(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return any(not torch.equal(sa[k], sb[k]) for k in sa)


class Killed(Exception):
    pass


def kill_when_epoch_starts(epoch: int):
    def progress(p):
        if p.epoch == epoch:
            raise Killed(f"killed at the start of epoch {epoch}")
    return progress


CFG = TrainConfig(epochs=3, batch_size=16, lr=5e-3, seed=0)


def hf_vit_foundation(folder: Path, names: list[str]) -> Path:
    """A tiny transformers ViT (4 layers, 32 px, seeded) with its image processor, saved with save_pretrained: the
    foundation of the transformers end-to-end audits."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=32, patch_size=8, num_hidden_layers=4, hidden_size=64, num_attention_heads=4,
                    intermediate_size=128, num_labels=len(names), id2label=dict(enumerate(names)),
                    label2id={n: i for i, n in enumerate(names)})
    ViTForImageClassification(cfg).save_pretrained(str(folder))
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3,
                      image_std=[0.5] * 3).save_pretrained(str(folder))
    return folder


def hf_trained(engine, start: Path, data: ImageSet, train: TrainConfig, out: Path) -> Path:
    """The model of ``start`` (a folder) fully fine-tuned on ``data`` by the engine, saved to ``out``."""
    from forensics.audit.sources import load_model
    from forensics.models import save_model

    m = load_model(f"local-dir:{start}")
    engine.train(m, data, data.labels, train)
    save_model(m, out)
    return out


def shown(element) -> str:
    """What a user reads of an AppTest markdown element (an error, info, caption...): its markdown source without the
    backslash escapes that keep names literal (forensics.runtime.safe_text.markdown_text)."""
    import re

    return re.sub(r"\\(.)", r"\1", str(element.value))
