"""forensics.engine (training, resume, splitting, cached logits), forensics.store, forensics.data,
forensics.stats and forensics.meta, on tiny timm models and synthetic data (seconds each, CPU)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from forensics.data import ImageSet, iter_batches, load_image_folder
from forensics.engine import Engine, TrainConfig, split_model
from forensics.errors import ConfigError, DataSourceError
from forensics.meta import MetaClassifier, MetaConfig
from forensics.models import LoadedModel, data_config_for, fingerprint_state_dict
from forensics.stats import difficulty_strata, paper_protocol, stratified_rank_test, stratum_weights
from forensics.store import ArtifactStore, artifact_key

ROOT = Path(__file__).resolve().parent.parent
INPUT = 32  # side length the tiny models see


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: tiny ops on a busy 2-core machine are ~100x slower with OpenMP spinning,
    and a fixed thread count keeps CPU results bit-reproducible within the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# helpers


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


# --------------------------------------------------------------------------------------------
# 1. resume after a kill


@pytest.mark.parametrize("trainable_blocks", [1, None], ids=["cached_tail", "full"])
def test_resume_after_kill_is_bit_identical(tmp_path, trainable_blocks):
    images = toy_images()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=5e-3, trainable_blocks=trainable_blocks, seed=0)
    start = make_loaded()
    engine = Engine(ArtifactStore(tmp_path / "store"), device="cpu")

    # the checkpoint folders do not exist yet: train must create them
    full = start.clone()
    h_full = engine.train(full, images, images.labels, cfg, checkpoint_dir=tmp_path / "ckpt" / "uninterrupted")
    assert h_full.resumed_from_epoch == 0 and [e["epoch"] for e in h_full.epochs] == [1, 2, 3]

    killed = start.clone()
    ckpt_dir = tmp_path / "ckpt" / "killed"
    with pytest.raises(Killed):
        engine.train(killed, images, images.labels, cfg, checkpoint_dir=ckpt_dir,
                     progress=kill_when_epoch_starts(2))
    saved = torch.load(ckpt_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert saved["epoch"] == 1

    # a fresh process: a fresh copy of the start model, a fresh engine on the same store
    resumed = start.clone()
    seen_epochs = []
    engine2 = Engine(ArtifactStore(tmp_path / "store"), device="cpu")
    h = engine2.train(resumed, images, images.labels, cfg, checkpoint_dir=ckpt_dir,
                      progress=lambda p: seen_epochs.append(p.epoch))
    assert h.resumed_from_epoch == 1
    assert min(seen_epochs) == 2  # epoch 1 was not trained again
    assert_same_state(resumed.model, full.model)
    assert resumed.fingerprint == full.fingerprint
    assert h.epochs == h_full.epochs  # losses of epoch 1 come from the checkpoint, the rest re-computed
    assert states_differ(resumed.model, start.model)

    # a re-run after completion restores the final weights without training
    again = start.clone()
    h3 = engine2.train(again, images, images.labels, cfg, checkpoint_dir=ckpt_dir,
                       progress=kill_when_epoch_starts(1))
    assert h3.resumed_from_epoch == 3
    assert_same_state(again.model, full.model)


def test_checkpoint_of_another_config_is_not_resumed(tmp_path):
    images = toy_images(60)
    start = make_loaded()
    engine = Engine(ArtifactStore(tmp_path / "store"), device="cpu")
    with pytest.raises(Killed):
        engine.train(start.clone(), images, images.labels, CFG, checkpoint_dir=tmp_path / "ck",
                     progress=kill_when_epoch_starts(2))
    other = TrainConfig(epochs=3, batch_size=16, lr=1e-3, seed=0)
    m = start.clone()
    h = engine.train(m, images, images.labels, other, checkpoint_dir=tmp_path / "ck")
    assert h.resumed_from_epoch == 0 and len(h.epochs) == 3
    ref = start.clone()
    engine.train(ref, images, images.labels, other)
    assert_same_state(m.model, ref.model)


# --------------------------------------------------------------------------------------------
# 2. seeds


@pytest.mark.parametrize("trainable_blocks", [1, None], ids=["cached_tail", "full"])
def test_same_seed_is_bit_identical_other_seed_differs(tmp_path, trainable_blocks):
    images = toy_images(60)
    start = make_loaded()
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    runs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        m = start.clone()
        cfg = TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=trainable_blocks, seed=seed)
        engine.train(m, images, images.labels, cfg)
        runs[name] = m
    assert_same_state(runs["a"].model, runs["b"].model)
    assert runs["a"].fingerprint == runs["b"].fingerprint
    assert states_differ(runs["a"].model, runs["c"].model)
    assert runs["a"].fingerprint != runs["c"].fingerprint


# --------------------------------------------------------------------------------------------
# 3. targets


def _kl(teacher: np.ndarray, student: np.ndarray, t: float) -> float:
    """Mean KL(softmax(teacher / t) || softmax(student / t)) * t^2, as the engine's distillation loss."""
    lt = torch.log_softmax(torch.as_tensor(teacher, dtype=torch.float64) / t, 1)
    ls = torch.log_softmax(torch.as_tensor(student, dtype=torch.float64) / t, 1)
    return float((lt.exp() * (lt - ls)).sum(1).mean()) * t * t


def test_distillation_on_teacher_logits_reduces_kl(tmp_path):
    images = toy_images(90)
    rng = np.random.default_rng(1)
    teacher = (np.eye(3)[images.labels] * 5.0 + rng.normal(0, 0.5, (len(images), 3))).astype(np.float64)
    student = make_loaded(seed=2)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    kl_before = _kl(teacher, engine.logits(student, images), 2.0)
    cfg = TrainConfig(epochs=12, batch_size=16, lr=5e-3, temperature=2.0, trainable_blocks=1)
    h = engine.train(student, images, teacher, cfg)
    losses = [e["loss"] for e in h.epochs]
    assert all(np.isfinite(losses)) and all(v >= 0 for v in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    # in eval mode too: the student's outputs moved towards the teacher's
    out = engine.logits(student, images)
    assert _kl(teacher, out, 2.0) < 0.25 * kl_before
    assert (out.argmax(1) == teacher.argmax(1)).mean() > 0.9, _kl(teacher, out, 2.0) / kl_before


def test_class_index_targets_reduce_cross_entropy(tmp_path):
    images = toy_images(90)
    model = make_loaded(seed=1)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    h = engine.train(model, images, images.labels, TrainConfig(epochs=4, batch_size=16, lr=5e-3, trainable_blocks=None))
    losses = [e["loss"] for e in h.epochs]
    assert losses[-1] < 0.5 * losses[0], losses
    assert h.epochs[-1]["accuracy"] > 0.9


def test_train_rejects_bad_targets(tmp_path):
    images = toy_images(30)
    engine = Engine(ArtifactStore(tmp_path), device="cpu")
    with pytest.raises(ConfigError, match="targets"):
        engine.train(make_loaded(), images, images.labels[:-1], CFG)
    with pytest.raises(ConfigError, match="at least 2"):
        one = images.subset([0])
        engine.train(make_loaded(), one, one.labels, CFG)


# --------------------------------------------------------------------------------------------
# 4. split_model


@pytest.mark.parametrize("trainable_blocks", [1, 2, 5, 99])
def test_efficientnet_tail_of_prefix_equals_forward(trainable_blocks):
    model = make_loaded().model.eval()
    x = torch.randn(4, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(0))
    split = split_model(model, trainable_blocks)
    assert split.family == "convnet"
    assert split.k == max(0, len(model.blocks) - trainable_blocks)
    with torch.no_grad():
        torch.testing.assert_close(split.tail(split.prefix(x)), model(x), rtol=1e-5, atol=1e-5)
    # prefix and tail weights partition the model's parameters
    pre = {id(p) for m in split.prefix_modules for p in m.parameters()}
    tail = {id(p) for m in split.tail_modules for p in m.parameters()}
    assert not pre & tail and pre | tail == {id(p) for p in model.parameters()}


def test_full_split_is_the_whole_model():
    model = make_loaded().model
    split = split_model(model, None)
    x = torch.randn(2, 3, INPUT, INPUT)
    assert split.family == "full" and split.prefix(x) is x and split.tail_modules == [model]


def _prefix_tail_state(loaded: LoadedModel, trainable_blocks: int = 1):
    split = split_model(loaded.model, trainable_blocks)
    def names(mods):
        ids = {id(m) for m in mods}
        return {f"{n}.{k}" for n, mod in loaded.model.named_modules() if id(mod) in ids for k in mod.state_dict()}
    return names(split.prefix_modules), names(split.tail_modules)


def test_partial_training_touches_only_the_tail(tmp_path):
    images = toy_images(60)
    start = make_loaded()
    prefix_names, tail_names = _prefix_tail_state(start)
    assert prefix_names and tail_names
    engine = Engine(ArtifactStore(tmp_path), device="cpu")

    m = start.clone()
    tail_params = {id(p) for m_ in split_model(m.model, 1).tail_modules for p in m_.parameters()}
    grad_sets = []
    engine.train(m, images, images.labels, TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=1),
                 progress=lambda p: grad_sets.append({id(q) for q in m.model.parameters() if q.requires_grad}))
    assert grad_sets and all(s == tail_params for s in grad_sets[:-1])  # the last call comes after training
    before, after = start.model.state_dict(), m.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in prefix_names)  # weights and BN statistics
    assert any(not torch.equal(before[k], after[k]) for k in tail_names)
    assert all(p.requires_grad for p in m.model.parameters())  # restored afterwards
    assert not m.model.training and m.fingerprint == fingerprint_state_dict(m.model.state_dict())

    f = start.clone()
    engine.train(f, images, images.labels, TrainConfig(epochs=2, batch_size=16, lr=5e-3, trainable_blocks=None))
    after_full = f.model.state_dict()
    assert any(not torch.equal(before[k], after_full[k]) for k in prefix_names if k.endswith("weight"))


def test_vit_tail_of_prefix_equals_forward():
    loaded = make_loaded("test_vit", img_size=INPUT)
    model = loaded.model.eval()
    x = torch.randn(3, 3, INPUT, INPUT, generator=torch.Generator().manual_seed(0))
    for tb in (1, 3, len(model.blocks) - 1):
        split = split_model(model, tb)
        assert split.family == "vit" and split.k == len(model.blocks) - tb
        with torch.no_grad():
            torch.testing.assert_close(split.tail(split.prefix(x)), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="trainable_blocks"):
        split_model(model, len(model.blocks))


def test_vit_cached_logits_depend_on_position_embedding(tmp_path):
    """The cached prefix activations are keyed by every weight outside the tail: two ViTs that
    differ only in pos_embed (a model parameter, not a prefix module) must not share them."""
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


def test_unsupported_architecture(tmp_path):
    images = toy_images(12)
    loaded = make_loaded("test_resnet")
    with pytest.raises(ConfigError, match="trainable_blocks=None"):
        split_model(loaded.model, 1)
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1)
    with pytest.raises(ConfigError, match="trainable_blocks=None"):
        engine.train(loaded.clone(), images, images.labels, TrainConfig(epochs=1, batch_size=8, trainable_blocks=1))
    out = engine.logits(loaded, images)  # falls back to the full forward
    assert out.shape == (12, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, forward_all(loaded, images), rtol=1e-4, atol=1e-5)
    assert engine.store.stats.computed == ["logits"]  # no activations stage


def test_cached_logits_equal_full_forward(tmp_path):
    images = toy_images(20)
    loaded = make_loaded()
    engine = Engine(ArtifactStore(tmp_path), device="cpu", cache_blocks=1, batch_size=8)
    out = engine.logits(loaded, images)
    assert engine.store.stats.computed == ["activations", "logits"]
    np.testing.assert_allclose(out, forward_all(loaded, images), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# 5. the artifact store


def _writer(log: Path, value: str, sleep: float = 0.0):
    def compute(tmp: Path):
        with open(log, "a") as f:
            f.write(f"{value}\n")
        time.sleep(sleep)
        (tmp / "value.txt").write_text(value)
        return {"value": value}
    return compute


def test_get_or_compute_computes_once_and_reuses(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    log = tmp_path / "log.txt"
    p1 = store.get_or_compute("stage", {"a": 1}, {"x": "f1"}, _writer(log, "one"))
    p2 = store.get_or_compute("stage", {"a": 1}, {"x": "f1"}, _writer(log, "two"))
    assert p1 == p2 and (p1 / "value.txt").read_text() == "one"
    assert log.read_text() == "one\n"
    assert store.stats.computed == ["stage"] and store.stats.hits == ["stage"]
    key = artifact_key("stage", {"a": 1}, {"x": "f1"})
    assert p1 == store.path("stage", key) and store.has("stage", key)
    meta = store.meta("stage", key)
    assert meta["value"] == "one" and meta["inputs"] == {"x": "f1"} and meta["config"] == {"a": 1}
    # another store object on the same root (another session) finds it too
    other = ArtifactStore(tmp_path / "store")
    assert other.get_or_compute("stage", {"a": 1}, {"x": "f1"}, _writer(log, "three")) == p1
    assert other.stats.hits == ["stage"] and other.stats.computed == []
    assert log.read_text() == "one\n"


def test_failed_compute_leaves_no_entry_and_no_temp_folder(tmp_path):
    store = ArtifactStore(tmp_path / "store")
    log = tmp_path / "log.txt"

    def boom(tmp: Path):
        (tmp / "partial.npy").write_bytes(b"half")
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError, match="compute failed"):
        store.get_or_compute("stage", {}, {"x": "f"}, boom)
    key = artifact_key("stage", {}, {"x": "f"})
    assert not store.has("stage", key) and not store.path("stage", key).exists()
    assert list((tmp_path / "store" / "stage").iterdir()) == []  # no .tmp-* left behind
    assert store.stats.computed == [] and store.stats.hits == []

    path = store.get_or_compute("stage", {}, {"x": "f"}, _writer(log, "ok"))
    assert (path / "value.txt").read_text() == "ok" and store.stats.computed == ["stage"]
    assert sorted(p.name for p in (tmp_path / "store" / "stage").iterdir()) == [key]


def test_interrupt_during_compute_also_cleans_up(tmp_path):
    store = ArtifactStore(tmp_path)

    def interrupted(tmp: Path):
        (tmp / "x").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.get_or_compute("stage", {}, {}, interrupted)
    assert list((tmp_path / "stage").iterdir()) == []


def test_two_threads_compute_once(tmp_path):
    log = tmp_path / "log.txt"
    barrier = threading.Barrier(2)
    stores = [ArtifactStore(tmp_path / "store") for _ in range(2)]
    paths, errors = [None, None], []

    def run(i):
        try:
            barrier.wait()
            paths[i] = stores[i].get_or_compute("stage", {"c": 1}, {"x": "f"}, _writer(log, f"t{i}", sleep=0.3))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(log.read_text().splitlines()) == 1
    assert paths[0] == paths[1] and (paths[0] / "value.txt").read_text() == log.read_text().strip()
    assert sorted(s.stats.computed + s.stats.hits for s in stores) == [["stage"], ["stage"]]
    assert sum(len(s.stats.computed) for s in stores) == 1


_PROCESS_SCRIPT = r"""
import sys, time
from pathlib import Path
from forensics.store import ArtifactStore
root, log, start_at, name = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
store = ArtifactStore(root)
def compute(tmp):
    with open(log, "a") as f:
        f.write(name + "\n")
    time.sleep(0.5)
    (tmp / "value.txt").write_text(name)
time.sleep(max(0.0, start_at - time.time()))
path = store.get_or_compute("stage", {"c": 2}, {"x": "f"}, compute)
print("computed" if store.stats.computed else "hit", (path / "value.txt").read_text())
"""


def test_two_processes_compute_once(tmp_path):
    log = tmp_path / "log.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    start_at = time.time() + 2.0  # both are past their imports by then
    procs = [subprocess.Popen([sys.executable, "-c", _PROCESS_SCRIPT, str(tmp_path / "store"), str(log),
                               str(start_at), f"p{i}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out.split())
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    assert sorted(o[0] for o in outs) == ["computed", "hit"]
    assert {o[1] for o in outs} == {lines[0]}  # the waiting process read the finished entry


def test_artifact_key_changes_with_config_and_inputs():
    base = artifact_key("logits", {"size": 32, "trigger": None}, {"model": "m1", "images": "i1"})
    assert base == artifact_key("logits", {"trigger": None, "size": 32}, {"images": "i1", "model": "m1"})
    assert base != artifact_key("logits", {"size": 64, "trigger": None}, {"model": "m1", "images": "i1"})
    assert base != artifact_key("logits", {"size": 32, "trigger": {"size": 0.1}}, {"model": "m1", "images": "i1"})
    assert base != artifact_key("logits", {"size": 32, "trigger": None}, {"model": "m2", "images": "i1"})
    assert base != artifact_key("logits", {"size": 32, "trigger": None}, {"model": "m1", "images": "i2"})
    assert base != artifact_key("activations", {"size": 32, "trigger": None}, {"model": "m1", "images": "i1"})


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
    assert second.store.stats.hits == ["logits"] and second.store.stats.computed == []

    # another image set or another model is a new entry
    second.logits(loaded, toy_images(20, seed=5))
    assert second.store.stats.computed[-1] == "logits"
    with torch.no_grad():
        loaded.model.classifier.bias.add_(1.0)
    loaded.refresh_fingerprint()
    out3 = second.logits(loaded, images)
    assert second.store.stats.computed[-1] == "logits"
    assert "activations" in second.store.stats.hits  # the head is in the tail: same frozen prefix
    np.testing.assert_allclose(out3, out1 + 1.0, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# 6. data


def _png(path: Path, value: int, size=(20, 24), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, value // 2, 255 - value)).save(path)


def test_load_image_folder_errors(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataSourceError, match="is a file"):
        load_image_folder(tmp_path / "file.png")
    flat = tmp_path / "flat"
    _png(flat / "a.png", 10)
    with pytest.raises(DataSourceError, match="no class subfolders"):
        load_image_folder(flat)
    empty = tmp_path / "empty"
    (empty / "cat").mkdir(parents=True)
    (empty / "dog").mkdir()
    (empty / "dog" / "notes.txt").write_text("not an image")
    with pytest.raises(DataSourceError, match="holds no images"):
        load_image_folder(empty)
    for err in (DataSourceError, ValueError):  # callers may catch the built-in type
        with pytest.raises(err):
            load_image_folder(tmp_path / "missing")


def _class_tree(root: Path) -> None:
    for cls, value in (("zebra", 200), ("ant", 20), ("moth", 120)):  # created out of order
        _png(root / cls / "b.png", value)
        _png(root / cls / "a.PNG", value + 5)
    _png(root / "moth" / "nested" / "deep.jpg", 130, mode="RGB")
    (root / "ant" / "readme.txt").write_text("ignored")
    _png(root / ".hidden" / "x.png", 0)  # a hidden folder is not a class


def test_load_image_folder_valid(tmp_path):
    root = tmp_path / "data"
    _class_tree(root)
    ds = load_image_folder(root)
    assert ds.classes == ["ant", "moth", "zebra"] and ds.name == "data"
    assert ds.ids.tolist() == ["ant/a.PNG", "ant/b.png", "moth/a.PNG", "moth/b.png", "moth/nested/deep.jpg",
                               "zebra/a.PNG", "zebra/b.png"]
    assert ds.labels.tolist() == [0, 0, 1, 1, 1, 2, 2]
    assert np.asarray(ds.pil(1)).shape == (24, 20, 3)
    # stable: the same ids and fingerprint on a re-load and from another location
    again = load_image_folder(root)
    moved = load_image_folder(shutil.copytree(root, tmp_path / "elsewhere" / "data"))
    assert again.ids.tolist() == moved.ids.tolist() == ds.ids.tolist()
    assert again.fingerprint == moved.fingerprint == ds.fingerprint


def test_heldout_folder_uses_the_victims_classes(tmp_path):
    root = tmp_path / "heldout"
    _png(root / "ant" / "1.png", 20)
    _png(root / "zebra" / "1.png", 200)
    ds = load_image_folder(root, classes=["ant", "moth", "zebra"])
    assert ds.classes == ["ant", "moth", "zebra"] and ds.labels.tolist() == [0, 2]
    _png(root / "whale" / "1.png", 90)
    with pytest.raises(DataSourceError, match="whale"):
        load_image_folder(root, classes=["ant", "moth", "zebra"])


def test_unreadable_image_names_the_file(tmp_path):
    _png(tmp_path / "d" / "c" / "good.png", 50)
    (tmp_path / "d" / "c" / "broken.png").write_bytes(b"not a png")
    ds = load_image_folder(tmp_path / "d")
    assert len(ds) == 2
    cfg = data_config_for(make_loaded().model, input_size=INPUT)
    with pytest.raises(DataSourceError, match="broken.png"):
        list(iter_batches(ds, cfg, batch_size=2))


def test_fingerprint_changes_with_one_pixel():
    a = toy_images(10)
    imgs = a.images.copy()
    imgs[7, 13, 5] ^= 1
    b = ImageSet(a.name, a.labels, a.ids, a.classes, images=imgs)
    assert a.fingerprint != b.fingerprint
    c = ImageSet(a.name, a.labels, a.ids, a.classes, images=a.images.copy())
    assert a.fingerprint == c.fingerprint
    d = ImageSet(a.name, a.labels, a.ids, ["x", "mid", "bright"], images=a.images.copy())
    assert a.fingerprint != d.fingerprint


def test_file_fingerprint_changes_with_one_pixel(tmp_path):
    _png(tmp_path / "d" / "c" / "x.png", 50)
    fp = load_image_folder(tmp_path / "d").fingerprint
    arr = np.full((24, 20), 50, np.uint8)
    arr[3, 4] = 51
    Image.fromarray(arr).save(tmp_path / "d" / "c" / "x.png")
    assert load_image_folder(tmp_path / "d").fingerprint != fp


def test_grayscale_becomes_three_channels_of_the_input_size(tmp_path):
    cfg = data_config_for(make_loaded().model, input_size=INPUT)
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    _png(tmp_path / "d" / "c" / "1.png", 90)
    _png(tmp_path / "d" / "c" / "2.png", 180)
    _png(tmp_path / "d" / "c" / "3.png", 30, mode="RGB")
    for ds in (toy_images(5), load_image_folder(tmp_path / "d")):
        batches = list(iter_batches(ds, cfg, batch_size=2))
        assert [len(r) for _, r in batches] == [2] * (len(ds) // 2) + [1] * (len(ds) % 2)
        x = torch.cat([b for b, _ in batches])
        rows = torch.cat([r for _, r in batches])
        assert x.shape == (len(ds), 3, INPUT, INPUT) and x.dtype == torch.float32
        assert rows.tolist() == list(range(len(ds)))
        raw = x * std + mean
        gray = [i for i in range(len(ds)) if ds.images is not None or ds.ids[i] != "c/3.png"]
        for i in gray:  # the three channels carry the same grey values
            torch.testing.assert_close(raw[i, 0], raw[i, 1], atol=1e-5, rtol=0)
            torch.testing.assert_close(raw[i, 0], raw[i, 2], atol=1e-5, rtol=0)
    torch.testing.assert_close(raw[0], torch.full((3, INPUT, INPUT), 90 / 255), atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------------------
# 7. statistics


def _simulate(rng: np.random.Generator, shift: float = 0.0, n: int = 200, n_strata: int = 4, ties: bool = False):
    cov_m, cov_c = rng.normal(size=n), rng.normal(size=n)
    if ties:  # 0/1 scores whose rate depends on the covariate
        sm = (rng.random(n) < 1 / (1 + np.exp(-cov_m))).astype(float)
        sc = (rng.random(n) < 1 / (1 + np.exp(-cov_c))).astype(float)
    else:
        sm = cov_m + rng.normal(size=n) - shift
        sc = cov_c + rng.normal(size=n)
    strata = difficulty_strata(np.concatenate([cov_m, cov_c]), n_strata)
    return sm, sc, strata[:n], strata[n:]


@pytest.mark.parametrize("weighting", [None, "flat", "quadratic"])
@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "ties"])
def test_rank_test_is_calibrated_under_the_null(weighting, ties):
    weights = None if weighting is None else stratum_weights(4, weighting)
    pvals = []
    for seed in range(300):
        sm, sc, gm, gc = _simulate(np.random.default_rng(seed), ties=ties)
        r = stratified_rank_test(sm, sc, gm, gc, weights=weights)
        assert np.isfinite(r.z) and 0.0 <= r.p_value <= 1.0
        pvals.append(r.p_value)
    pvals = np.array(pvals)
    assert 0.02 <= (pvals < 0.05).mean() <= 0.09
    assert 0.05 <= (pvals < 0.1).mean() <= 0.16
    assert 0.4 <= np.median(pvals) <= 0.6


@pytest.mark.parametrize("weighting", [None, "quadratic"])
def test_rank_test_detects_a_real_shift(weighting):
    weights = None if weighting is None else stratum_weights(4, weighting)
    for seed in range(20):
        sm, sc, gm, gc = _simulate(np.random.default_rng(1000 + seed), shift=0.8)
        r = stratified_rank_test(sm, sc, gm, gc, weights=weights)
        assert r.p_value < 1e-3 and r.z > 3
        # one-sided: members with *higher* losses are no evidence
        assert stratified_rank_test(sc, sm, gc, gm, weights=weights).p_value > 0.5


def test_rank_test_strata_and_degenerate_cases():
    sm, sc, gm, gc = _simulate(np.random.default_rng(0), n=100)
    r = stratified_rank_test(sm, sc, gm, gc)
    assert [row["stratum"] for row in r.strata] == [0, 1, 2, 3]
    assert sum(row["members"] for row in r.strata) == 100 and sum(row["controls"] for row in r.strata) == 100
    assert all(0 <= row["auc"] <= 1 for row in r.strata)
    same = np.zeros(50)
    r = stratified_rank_test(same, same, np.zeros(50, int), np.zeros(50, int))  # all tied: no information
    assert (r.z, r.p_value) == (0.0, 1.0)
    with pytest.raises(ValueError, match="NaN"):
        stratified_rank_test(np.array([np.nan, 1.0]), np.ones(2), np.zeros(2, int), np.zeros(2, int))
    with pytest.raises(ValueError, match="weighting"):
        stratum_weights(4, "cubic")
    np.testing.assert_array_equal(stratum_weights(3), [1.0, 4.0, 9.0])


def test_difficulty_strata_are_quantiles():
    x = np.random.default_rng(0).normal(size=1000)
    s = difficulty_strata(x, 4)
    assert np.bincount(s).tolist() == [250, 250, 250, 250]
    assert x[s == 0].max() < x[s == 3].min()


def test_paper_protocol_is_reproducible():
    p = np.random.default_rng(0).uniform(0.3, 0.9, 500)
    a = paper_protocol(p, np.random.default_rng(7))
    b = paper_protocol(p, np.random.default_rng(7))
    c = paper_protocol(p, np.random.default_rng(8))
    assert a == b
    assert a[1] != c[1]
    assert len(a[1]) == 40 and 0 < a[0] <= 1


# --------------------------------------------------------------------------------------------
# 8. the meta-classifier


def _separable(n: int, k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    direction = np.zeros(k)
    direction[:3] = [3.0, -2.0, 1.5]
    X = rng.normal(size=(n, k)) + np.outer(2 * y - 1, direction)
    return X, y


def test_meta_classifier_fit_save_load(tmp_path):
    X, y = _separable(400)
    Xv, yv = _separable(200, seed=1)
    clf = MetaClassifier(config=MetaConfig(epochs=60, eval_every=10)).fit(X, y, Xv, yv)
    assert clf.val_accuracy_ > 0.9 and clf.train_accuracy_ > 0.9
    Xt, yt = _separable(200, seed=2)
    proba = clf.predict_proba(Xt)
    assert proba.shape == (200, 2) and np.allclose(proba.sum(1), 1)
    assert (proba.argmax(1) == yt).mean() > 0.9

    clf.save(tmp_path)
    back = MetaClassifier.load(tmp_path)
    assert np.array_equal(back.predict_proba(Xt), proba)
    assert np.array_equal(back.predict_proba(Xt, refit_scaler=True), clf.predict_proba(Xt, refit_scaler=True))
    assert back.val_accuracy_ == clf.val_accuracy_ and back.best_epoch_ == clf.best_epoch_
    with pytest.raises(ConfigError, match="features"):
        back.predict_proba(Xt[:, :5])

    again = MetaClassifier(config=MetaConfig(epochs=60, eval_every=10)).fit(X, y, Xv, yv)
    assert np.array_equal(again.predict_proba(Xt), proba)  # seeded


def test_meta_classifier_unfitted_and_one_class():
    clf = MetaClassifier()
    with pytest.raises(ConfigError, match="not fitted"):
        clf.predict_proba(np.ones((2, 3)))
    with pytest.raises(ConfigError, match="both classes"):
        clf.fit(np.random.default_rng(0).normal(size=(10, 4)), np.ones(10, int))
    with pytest.raises(ConfigError):
        MetaConfig(epochs=0)
