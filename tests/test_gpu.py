"""The engine on a CUDA GPU (``gpu`` marker: skipped where torch sees none): bf16 autocast inference agrees with the
CPU's fp32 on a tiny model, training runs on the device and is stored under its own precision, and a trained model
comes back to the CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import forward_all, make_loaded, toy_images

from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.engine.stored import train_stored
from forensics.runtime.store import ArtifactStore

pytestmark = pytest.mark.gpu


def test_bf16_inference_on_the_gpu_agrees_with_the_cpu(tmp_path):
    images = toy_images(64)
    loaded = make_loaded(num_classes=3)
    gpu = Engine(ArtifactStore(tmp_path / "gpu"), device="cuda", cache_blocks=None)
    cpu = Engine(ArtifactStore(tmp_path / "cpu"), device="cpu", cache_blocks=None)
    assert (gpu.precision, cpu.precision) == ("bf16", "fp32")
    on_gpu, on_cpu = gpu.logits(loaded, images), cpu.logits(loaded, images)
    assert on_gpu.shape == on_cpu.shape == (64, 3) and np.isfinite(on_gpu).all()
    np.testing.assert_allclose(on_gpu, on_cpu, atol=0.1, rtol=0.05)  # bf16 keeps ~3 significant digits
    assert (on_gpu.argmax(1) == on_cpu.argmax(1)).mean() > 0.8
    np.testing.assert_allclose(on_cpu, forward_all(loaded, images), atol=1e-4)
    assert next(loaded.model.parameters()).device.type == "cpu"  # the engine hands the model back


def test_training_on_the_gpu_is_stored_under_its_precision(tmp_path):
    images = toy_images(64)
    store = ArtifactStore(tmp_path)
    start = make_loaded(num_classes=3)
    cfg = TrainConfig(epochs=2, lr=5e-3, batch_size=16, trainable_blocks=None)
    gpu = Engine(store, device="cuda", cache_blocks=None)
    model, history = train_stored(gpu, "gpu_check", start, images, images.labels, cfg)
    assert model.fingerprint != start.fingerprint and len(history["epochs"]) == 2
    assert next(model.model.parameters()).device.type == "cpu"
    assert np.isfinite(forward_all(model, images)).all()
    cpu_model, _ = train_stored(Engine(store, device="cpu", cache_blocks=None), "gpu_check", start, images,
                                images.labels, cfg)
    assert cpu_model.fingerprint != model.fingerprint  # fp32 on the CPU is another run, under another key
    assert len(list((tmp_path / "gpu_check").iterdir())) == 2
    assert torch.cuda.is_available()
