"""forensics.engine: batched inference with cached frozen-prefix activations, cache keys."""
from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import forward_all, make_loaded, toy_images

from forensics.data.images import ImageSet, concat
from forensics.engine.engine import Engine
from forensics.models import LoadedModel
from forensics.runtime.store import ArtifactStore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_cached_logits_equal_full_forward(tmp_path):
    images = toy_images(20)
    loaded = make_loaded()
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1, batch_size=8)
    out = engine.logits(loaded, images)
    assert engine.store.stats.computed == Counter({"activations": 1, "logits": 1})
    np.testing.assert_allclose(out, forward_all(loaded, images), rtol=1e-4, atol=1e-5)


def test_unsupported_architecture_falls_back_to_the_full_forward(tmp_path):
    images = toy_images(12)
    loaded = make_loaded("test_resnet")
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1)
    out = engine.logits(loaded, images)
    assert out.shape == (12, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, forward_all(loaded, images), rtol=1e-4, atol=1e-5)
    assert engine.store.stats.computed == Counter({"logits": 1})  # no activations stage


def test_vit_cached_logits_depend_on_position_embedding(tmp_path):
    """The cached prefix activations are keyed by every weight outside the tail: two ViTs that
    differ only in pos_embed (a model parameter, not a prefix module) must not share them."""
    from helpers import INPUT

    images = toy_images(12)
    a = make_loaded("test_vit", img_size=INPUT)
    b = make_loaded("test_vit", img_size=INPUT)
    with torch.no_grad():
        b.model.pos_embed.add_(torch.randn(b.model.pos_embed.shape, generator=torch.Generator().manual_seed(1)))
    b.refresh_fingerprint()
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1)
    la, lb = engine.logits(a, images), engine.logits(b, images)
    np.testing.assert_allclose(la, forward_all(a, images), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lb, forward_all(b, images), rtol=1e-4, atol=1e-5)
    assert not np.allclose(la, lb)


def test_logits_key_includes_architecture_and_preprocessing(tmp_path):
    rng = np.random.default_rng(0)
    images = ImageSet("x", rng.integers(0, 3, 8), np.arange(8).astype(str), ["a", "b", "c"],
                      images=rng.integers(0, 255, (8, 28, 28), dtype=np.uint8))
    store = ArtifactStore(tmp_path)
    eng = Engine(store, cache_blocks=None)
    m = make_loaded()
    a = eng.logits(m, images)
    eng.logits(replace(m, arch="another_arch_name"), images)        # same weights, other architecture
    bigger = replace(m, data_config={**m.data_config, "input_size": (3, 48, 48)})
    b = eng.logits(bigger, images)                                   # same weights, other preprocessing
    assert store.stats.computed["logits"] == 3
    assert not np.allclose(a, b)


class _MustNotRun(torch.nn.Module):
    def forward(self, x):  # pragma: no cover - failing is the point
        raise AssertionError("the model was run although its logits are stored")


def test_logits_are_reused_by_a_second_engine_without_running_the_model(tmp_path):
    images = toy_images(20)
    loaded = make_loaded()
    first = Engine(ArtifactStore(tmp_path), device="cpu")
    out1 = first.logits(loaded, images)
    assert "logits" in first.store.stats.computed

    second = Engine(ArtifactStore(tmp_path), device="cpu")
    stand_in = LoadedModel(_MustNotRun(), loaded.arch, 3, "stand-in", loaded.fingerprint, dict(loaded.data_config))
    out2 = second.logits(stand_in, images)
    assert np.array_equal(out1, out2) and out2.dtype == out1.dtype
    assert second.store.stats.hits == {"logits": 1} and not second.store.stats.computed

    # another image set or another model is a new entry
    second.logits(loaded, toy_images(20, seed=5))
    assert second.store.stats.computed["logits"] == 1
    with torch.no_grad():
        loaded.model.classifier.bias.add_(1.0)
    loaded.refresh_fingerprint()
    out3 = second.logits(loaded, images)
    assert second.store.stats.computed["logits"] == 2
    assert "activations" in second.store.stats.hits  # the head is in the tail: same frozen prefix
    np.testing.assert_allclose(out3, out1 + 1.0, rtol=1e-5, atol=1e-5)


def test_training_on_the_cpu_uses_the_pinned_thread_count_whatever_torch_was_set_to(tmp_path, monkeypatch):
    """The intra-op thread count changes CPU results (measured: the demo victim's weights differ between 1 and
    2 threads); the engine pins FORENSICS_CPU_THREADS for its work, so the caller's setting does not matter.
    (The count is set, not restored afterwards: jobs in threads of one process would undo each other's.)"""
    from forensics.engine.recipe import TrainConfig

    monkeypatch.setenv("FORENSICS_CPU_THREADS", "2")
    images = toy_images(64)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=1e-2, trainable_blocks=None, seed=0)
    seen, weights = [], []
    for outer in (1, 2):
        torch.set_num_threads(outer)
        loaded = make_loaded(seed=3)
        engine = Engine(ArtifactStore(tmp_path / str(outer)), device="cpu", cache_blocks=None)
        engine.train(loaded, images, images.labels, cfg,
                     progress=lambda ev: seen.append(torch.get_num_threads()))
        weights.append(loaded.fingerprint)
    torch.set_num_threads(1)
    assert set(seen) == {2}
    assert weights[0] == weights[1]
    monkeypatch.setenv("FORENSICS_CPU_THREADS", "auto")
    assert Engine(ArtifactStore(tmp_path / "auto"), device="cpu").cpu_threads is None


def test_recalibrated_normalisation_statistics_are_those_of_the_new_data(tmp_path):
    """Each BatchNorm's running mean becomes the mean of its input over the data (one pass, cumulative average)."""
    images = toy_images(24, seed=3)
    loaded = make_loaded()
    norms = {n: m for n, m in loaded.model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    first_name, first = next(iter(norms.items()))
    seen: list[torch.Tensor] = []
    hook = first.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().clone()))
    before = loaded.fingerprint
    engine = Engine(ArtifactStore(tmp_path), device="cpu", batch_size=8)
    assert engine.recalibrate_norm(loaded, images) == len(norms) > 0
    hook.remove()
    x = torch.cat(seen)
    torch.testing.assert_close(first.running_mean, x.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert first.momentum == 0.1 and not loaded.model.training          # settings restored, eval mode again
    assert loaded.fingerprint != before                                  # a changed model is another model
    for m in norms.values():                                             # a model without BatchNorm: nothing to do
        m.track_running_stats = False
    assert engine.recalibrate_norm(loaded, images) == 0, first_name


def test_subset_activations_are_rows_of_its_origins(tmp_path):
    """A part of an image set whose activations are stored runs no prefix: its rows are sliced from the whole's,
    bit for bit what a direct pass gives.  A part of a set never run computes only itself."""
    import pickle

    from forensics.models.splitting import split_model

    images = toy_images(24)
    loaded = make_loaded()
    split = split_model(loaded.model, 1)
    engine = Engine(ArtifactStore(tmp_path / "a"), device="cpu", cache_blocks=1, batch_size=8)
    lone = images.subset([5, 1, 2])  # the whole has not been run: the part is computed, the whole is not
    engine.activations(loaded, split, lone)
    assert engine.store.stats.computed["activations"] == 1
    whole = engine.activations(loaded, split, images)
    assert engine.store.stats.computed["activations"] == 2
    part = images.subset([3, 17, 4, 9, 22, 0, 11], "part")
    sub = part.subset([6, 1, 2])  # a part of a part: rows 11, 17, 4 of the whole
    assert sub.origin()[0] is images and sub.origin()[1].tolist() == [11, 17, 4]
    got_part, got_sub = engine.activations(loaded, split, part), engine.activations(loaded, split, sub)
    assert engine.store.stats.computed["activations"] == 2  # both sliced, nothing run
    direct = Engine(ArtifactStore(tmp_path / "b"), device="cpu", cache_blocks=1, batch_size=8)
    assert torch.equal(got_part, direct.activations(loaded, split, part))
    assert torch.equal(got_sub, whole[[11, 17, 4]])
    # a fresh engine on the same store finds the whole's entry on disk
    again = Engine(ArtifactStore(tmp_path / "a"), device="cpu", cache_blocks=1, batch_size=8)
    assert torch.equal(again.activations(loaded, split, sub), got_sub)
    assert again.store.stats.computed["activations"] == 0
    # the link to the origin does not travel (Ray tasks, DataLoader workers): the copy computes its own
    copy = pickle.loads(pickle.dumps(sub))
    assert copy.origin() is None and copy.fingerprint == sub.fingerprint
    np.testing.assert_array_equal(engine.logits(loaded, copy), direct.logits(loaded, sub))
    # a query set: rows of two origins, concatenated and shuffled, is sliced from both once both have run
    other = toy_images(10, seed=1, name="other")
    mixed = concat([images.subset([2, 7]), other.subset([4, 0, 9])], "mixed").subset([3, 0, 4, 2, 1], "queries")
    assert [(root.name, at.tolist(), rows.tolist()) for root, at, rows in mixed.origins()] == [
        ("toy", [1, 4], [2, 7]), ("other", [0, 2, 3], [0, 9, 4])]
    before = engine.store.stats.computed["activations"]
    assert mixed.origin() is None and engine.activations(loaded, split, mixed) is not None
    assert engine.store.stats.computed["activations"] == before + 1  # "other" never ran: the whole query set ran
    fresh = Engine(ArtifactStore(tmp_path / "c"), device="cpu", cache_blocks=1, batch_size=8)
    fresh.activations(loaded, split, images)
    fresh.activations(loaded, split, other)
    assert torch.equal(fresh.activations(loaded, split, mixed), direct.activations(loaded, split, mixed))
    assert fresh.store.stats.computed["activations"] == 2  # the query set sliced from both origins


def test_partly_stamped_activations_are_the_clean_rows_with_the_stamped_rows_run_alone(tmp_path):
    """The poisoned shadow stamps D_s only: its activations are the clean set's, with only the stamped rows run through
    the prefix again, and equal to the whole set run with the stamp."""
    from forensics.data.transforms import Trigger, iter_batches
    from forensics.models.splitting import split_model

    images, loaded, trigger = toy_images(24), make_loaded(), Trigger()
    split = split_model(loaded.model, 1)
    stamped = np.zeros(len(images), bool)
    stamped[[3, 8, 20]] = True
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1, batch_size=8)
    got = engine.activations(loaded, split, images, trigger=trigger, triggered=stamped)
    assert engine.store.stats.computed["activations"] == 2  # the clean set, and the 3 stamped rows
    with torch.inference_mode():
        whole = torch.cat([split.prefix(x) for x, _ in iter_batches(images, loaded.data_config, 8, trigger=trigger,
                                                                    triggered=stamped)])
    torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-6)  # the test's pass runs another memory layout
    clean = engine.activations(loaded, split, images)
    assert not torch.equal(got[stamped], clean[stamped]) and torch.equal(got[~stamped], clean[~stamped])
    assert engine.activations(loaded, split, images, trigger=trigger, triggered=stamped) is got  # kept in memory
