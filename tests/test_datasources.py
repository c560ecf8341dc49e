"""forensics.data.formats: Hugging Face datasets (save_to_disk), parquet / arrow tables, imagefolder metadata and CSV
listings, written with the real libraries."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from forensics.audit.sources import load_data
from forensics.data.formats import load_data_source
from forensics.errors import DataSourceError

NAMES = ["cat", "dog", "fox"]


def images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (16 + i % 3, 16, 3), dtype=np.uint8)) for i in range(n)]


def dataset(n: int = 12, seed: int = 0, names=NAMES):
    import datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"image": images(n, seed), "label": [i % len(names) for i in range(n)]},
                                      features=feats)


def test_a_saved_dataset_and_its_splits(tmp_path):
    import datasets

    dataset().save_to_disk(str(tmp_path / "one"))
    one = load_data_source(str(tmp_path / "one"))
    assert len(one) == 12 and one.classes == NAMES and list(one.labels[:4]) == [0, 1, 2, 0]
    assert one.pil(1).size == (16, 17) and one.blobs is not None
    assert one.fingerprint == load_data_source(str(tmp_path / "one")).fingerprint
    datasets.DatasetDict({"train": dataset(12), "test": dataset(9, seed=1)}).save_to_disk(str(tmp_path / "dd"))
    train = load_data(str(tmp_path / "dd"))  # the default split, through the audit's own loader
    test = load_data(f"{tmp_path / 'dd'}?split=test", classes=train.classes)
    assert (len(train), len(test)) == (12, 9) and test.classes == NAMES
    assert train.fingerprint != test.fingerprint
    with pytest.raises(DataSourceError, match=r"holds the splits \['test', 'train'\]; choose one .*'valid'"):
        load_data_source(f"{tmp_path / 'dd'}?split=valid")
    with pytest.raises(DataSourceError, match="single dataset"):
        load_data_source(f"{tmp_path / 'one'}?split=train")


def test_parquet_and_arrow_files_keep_the_class_names(tmp_path):
    import pyarrow as pa

    ds = dataset()
    ds.to_parquet(str(tmp_path / "d.parquet"))
    pq = load_data_source(str(tmp_path / "d.parquet"))
    assert pq.classes == NAMES and len(pq) == 12 and pq.pil(0).size == (16, 16)
    table = ds.with_format("arrow")[:]
    with pa.OSFile(str(tmp_path / "d.arrow"), "wb") as f, pa.ipc.new_stream(f, table.schema) as w:
        w.write_table(table)
    arrow = load_data_source(str(tmp_path / "d.arrow"))
    assert arrow.classes == NAMES and arrow.fingerprint == pq.fingerprint


def test_column_names_are_configurable_and_a_missing_one_is_named(tmp_path):
    ds = dataset().rename_columns({"image": "picture", "label": "species"})
    ds.to_parquet(str(tmp_path / "d.parquet"))
    with pytest.raises(DataSourceError, match=r"no image column found \(columns: \['picture', 'species'\]\); "
                                              r"name it with \?image=COLUMN"):
        load_data_source(str(tmp_path / "d.parquet"))
    with pytest.raises(DataSourceError, match="no column 'kind'"):
        load_data_source(f"{tmp_path / 'd.parquet'}?image=picture&label=kind")
    ok = load_data_source(f"{tmp_path / 'd.parquet'}?image=picture&label=species")
    assert ok.classes == NAMES and len(ok) == 12
    with pytest.raises(DataSourceError, match=r"unknown option\(s\) \['labels'\]"):
        load_data_source(f"{tmp_path / 'd.parquet'}?labels=species")


def test_imagefolder_metadata_and_csv_listings(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    rows = []
    for i, im in enumerate(images(8)):
        im.save(root / f"{i}.png")
        rows.append(f"{i}.png,{['zebra', 'ant'][i % 2]}")
    (root / "metadata.csv").write_text("file_name,label\n" + "\n".join(rows) + "\n")
    meta = load_data_source(str(root))
    assert meta.classes == ["ant", "zebra"] and list(meta.labels[:2]) == [1, 0] and meta.ids[0] == "0.png"
    (tmp_path / "list.csv").write_text("path,label\n" + "\n".join(f"imgs/{r}" for r in rows) + "\n")
    listed = load_data_source(str(tmp_path / "list.csv"))
    assert listed.classes == ["ant", "zebra"] and len(listed) == 8 and listed.pil(3).size == (16, 16)
    (tmp_path / "bad.csv").write_text("path,label\nimgs/0.png,ant\nimgs/missing.png,ant\n")
    with pytest.raises(DataSourceError, match=r"bad.csv: row 1: image file 'imgs/missing.png' does not exist"):
        load_data_source(str(tmp_path / "bad.csv"))
    # held-out data must use the victim's classes
    with pytest.raises(DataSourceError, match=r"classes \['zebra'\] are not among the victim's classes"):
        load_data_source(str(tmp_path / "list.csv"), classes=["ant", "bee"])


def test_an_unreadable_image_is_an_error_that_names_it(tmp_path):
    import datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    buf = io.BytesIO()
    images(1)[0].save(buf, format="PNG")
    ds = datasets.Dataset.from_dict({"image": [{"bytes": buf.getvalue(), "path": None},
                                               {"bytes": b"not an image", "path": None}], "label": [0, 1]},
                                    features=feats)
    ds.save_to_disk(str(tmp_path / "broken"))
    s = load_data_source(str(tmp_path / "broken"))
    s.pil(0)
    with pytest.raises(DataSourceError, match=r"cannot read image 'broken/000001' of broken"):
        s.pil(1)
    with pytest.raises(DataSourceError, match="does not exist"):
        load_data_source(str(tmp_path / "nothing-here"))
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataSourceError, match=r"x\.txt: not a data source this tool reads"):
        load_data_source(str(tmp_path / "x.txt"))


def test_unlabelled_rows_are_refused(tmp_path):
    import datasets

    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    ds = datasets.Dataset.from_dict({"image": images(3), "label": [0, -1, 2]}, features=feats)
    ds.to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(DataSourceError, match=r"row 1 has label -1 .*unlabelled image"):
        load_data_source(str(tmp_path / "t.parquet"))
