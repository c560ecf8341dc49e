"""benchmarks/gpu.py on a tiny timm ViT (32 px, CPU, one timed step): positive throughputs and FLOP counts."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from helpers import ROOT, make_loaded

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny():
    return make_loaded("test_vit", img_size=32, num_classes=10)


def test_flops_are_counted(gpu_bench, tiny):
    f = gpu_bench.count_flops(tiny, trainable_blocks=1)
    assert f["forward"] > 0 and f["prefix_forward"] > 0 and f["train_tail"] > 0
    assert 2.5 * f["forward"] < f["train_full"] < 3.5 * f["forward"]  # backward ~ twice the forward
    assert f["prefix_forward"] < f["forward"] and f["train_tail"] < f["train_full"]
    m = tiny.model  # one image's cached prefix output: tokens x width, fp32
    assert f["activation_bytes"] == (m.patch_embed.num_patches + m.num_prefix_tokens) * m.embed_dim * 4


def test_peak_table(gpu_bench):
    assert gpu_bench.peak_for("NVIDIA H200")[0] == pytest.approx(989.4)
    assert gpu_bench.peak_for("NVIDIA H100 80GB HBM3")[0] == pytest.approx(989.4)
    assert gpu_bench.peak_for("NVIDIA H100 PCIe")[0] == pytest.approx(756.5)
    assert gpu_bench.peak_for("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert gpu_bench.peak_for("NVIDIA L4")[0] == 121.0
    assert gpu_bench.peak_for("NVIDIA L40S")[0] == pytest.approx(362.05)
    assert gpu_bench.peak_for("NVIDIA A10G")[0] == 125.0
    assert gpu_bench.peak_for("Some Unknown GPU")[0] is None


def test_train_and_logits_throughput(gpu_bench, tiny, tmp_path):
    flops = gpu_bench.count_flops(tiny, trainable_blocks=1)
    images = gpu_bench.synthetic_set(16, 32, 10)
    assert gpu_bench.bench_input(tiny, images, 8)["images_per_s"] > 0
    for tb in (None, 1):
        row = gpu_bench.bench_train(tiny, images, device="cpu", batch_size=8, warmup=1, steps=1, trainable_blocks=tb,
                                    flops=flops, peak_tflops=None, workdir=tmp_path)
        assert row["images_per_s"] > 0 and row["step_ms"] > 0 and row["tflops"] > 0 and row["mfu"] is None
        assert ("prefix_cache" in row) == (tb is not None)
    row = gpu_bench.bench_train(tiny, images, device="cpu", batch_size=8, warmup=1, steps=1, trainable_blocks=None,
                                flops=flops, peak_tflops=1.0, workdir=tmp_path)
    assert 0 < row["mfu"] == pytest.approx(row["tflops"])
    warm = gpu_bench.synthetic_set(8, 32, 10, seed=1, name="warm")
    for cache_blocks in (None, 1):
        row = gpu_bench.bench_logits(tiny, images, warm, device="cpu", batch_size=8, cache_blocks=cache_blocks,
                                     flops_per_image=flops["forward"], peak_tflops=None, workdir=tmp_path)
        assert row["images_per_s"] > 0 and row["tflops"] > 0
        assert (row["store_mb"] > 0.01) == (cache_blocks is not None)  # activations stored only with a prefix


def test_main_prints_tables_and_json(gpu_bench, tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_bench, "fresh_model", lambda *a, **k: tiny.clone())
    res = gpu_bench.main(["--device", "cpu", "--arch", "test_vit", "--batch-sizes", "4", "--warmup", "1",
                          "--steps", "1", "--image-px", "32", "--store-dir", str(tmp_path),
                          "--json", str(tmp_path / "bench.json")])
    out = capsys.readouterr().out
    assert "NO GPU" in out and "n/a (peak unknown)" in out
    assert "### Shadow fine-tuning" in out and "### Suspect logits" in out and "| full | 4 |" in out
    assert len(res["train"]) == 2 and len(res["logits"]) == 2
    assert all(r["images_per_s"] > 0 for r in res["train"] + res["logits"])
    assert (tmp_path / "bench.json").is_file()


def test_audit(gpu_bench, tmp_path):
    # the tests' tiny EfficientNet at 32 px (the audit code is the same for any architecture; a ViT built with timm's
    # img_size=32 would not reload from the store, which saves no timm model arguments)
    foundation = make_loaded(num_classes=10)
    a = gpu_bench.bench_audit(foundation, device="cpu", n_private=400, n_heldout=100, suspects=2, image_px=32,
                              workdir=tmp_path, epochs=1)
    assert a["total_s"] > 0 and len(a["verify_s"]) == 2 and all(0 <= p <= 1 for p in a["p_values"])
    for stage in ("loss_order", "poisoned_shadow", "benign_shadow", "reference_shadow", "meta_classifier"):
        assert a["stages_s"][stage] > 0
    assert np.isfinite(a["store_gb"]) and a["queries"] > 0


def test_gpu_tables_format(gpu_bench):
    """The GPU branch of the tables (no GPU needed): machine line, peak, MFU in per cent, an out-of-memory row."""
    info = {"device": "cuda", "gpu": "NVIDIA H200", "gpu_memory_gib": 139.8, "cuda": "13.0", "cpu": "x",
            "cpu_cores": 16,
            "torch": "2", "timm": "1", "python": "3.11", "precision": "bf16 autocast, channels_last",
            "peak_tflops": 989.4, "peak_source": "H200 SXM"}
    flops = {"forward": 35e9, "train_full": 105e9}
    res = {"machine": info, "flops": flops, "arch": "vit_base_patch16_224", "input_px": 224, "image_px": 224,
           "trainable_blocks": 1, "input": {"images": 256, "images_per_s": 800.0, "engine_workers": 8},
           "train": [{"mode": "full", "batch_size": 64, "images_per_s": 3000.0, "step_ms": 21.3, "tflops": 315.0,
                      "mfu": 315.0 / 989.4, "peak_gpu_gib": 20.0},
                     {"mode": "full", "batch_size": 512, "error": "out of memory", "peak_gpu_gib": 139.0}],
           "logits": []}
    text = gpu_bench.format_tables(res)
    assert "NVIDIA H200" in text and "989.4 TFLOP/s" in text and "31.8 %" in text and "out of memory" in text
    assert "8 DataLoader workers" in text and "(skipped)" in text
