"""forensics.data: image folders, fingerprints, transforms, the trigger."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import INPUT, make_loaded, toy_images
from PIL import Image

from forensics.data.images import ImageSet, load_image_folder
from forensics.data.transforms import Trigger, iter_batches
from forensics.errors import DataSourceError
from forensics.models import data_config_for


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
    with pytest.raises(DataSourceError, match=r"broken\.png"):
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




def test_trigger_is_stamped_after_resizing():
    data = toy_images(2)
    cfg = {**data_config_for(make_loaded().model, input_size=64), "mean": (0.5,) * 3, "std": (0.5,) * 3}
    trig = Trigger(size=0.125, value=1.0)
    x, _ = next(iter(iter_batches(data, cfg, trigger=trig)))
    clean, _ = next(iter(iter_batches(data, cfg)))
    s = 8  # 0.125 * 64
    assert torch.all(x[:, :, -s:, -s:] == 1.0)  # white after normalisation with mean = std = 0.5
    assert torch.equal(x[:, :, :-s, :], clean[:, :, :-s, :])


def test_synthetic_queries_are_seeded_images_of_no_class():
    from forensics.data.images import synthetic_images

    a = synthetic_images(8, (28, 28), ["x", "y"], seed=1)
    b = synthetic_images(8, (28, 28), ["x", "y"], seed=1)
    assert a.fingerprint == b.fingerprint and a.images.dtype == np.uint8 and a.images.shape == (8, 28, 28)
    assert synthetic_images(8, (28, 28), ["x", "y"], seed=2).fingerprint != a.fingerprint
    assert a.images.std() > 20 and len(np.unique(a.ids)) == 8  # varied patterns, one id each
    assert synthetic_images(2, (16, 16, 3), ["x"]).images.shape == (2, 16, 16, 3)
