"""Where an audit's images come from, as owners keep them.

A data source is a path, optionally followed by options in the query-string form ``PATH?split=test&image=img&
label=fine_label`` (the same string on the command line, in the dashboard and in the audit record):

* a folder with one subfolder per class (:func:`forensics.data.load_image_folder`);
* a Hugging Face dataset written with ``save_to_disk`` (a ``Dataset``, or a ``DatasetDict`` whose split is chosen
  with ``split=``; default ``train``): so a held-out set can be another split of the same dataset;
* a parquet (``.parquet``) or Arrow (``.arrow``) file with an image column and a label column;
* an ``imagefolder`` with ``metadata.csv`` / ``metadata.jsonl`` (a ``file_name`` column and a label column);
* a CSV (``.csv``) of image file paths (relative to the CSV's folder) and labels.

``image=`` and ``label=`` name the columns when they are not the usual ones (``image`` / ``img``, ``label`` /
``labels`` / ``fine_label``).  Class names come from the dataset's ``ClassLabel`` feature when it has one, else from
the labels themselves (names sorted; whole numbers 0..K-1 stay in that order).  Images stay encoded (PNG/JPEG bytes)
until they are used.
"""
from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataSourceError
from ..runtime.access import allowed_path, check_paths, quoted, shared
from .images import ImageSet, load_image_folder


def _said(e: Exception) -> str:
    """A reader's error, which may quote the file (a line, a cell): withheld on a shared server."""
    return f"{type(e).__name__} (details withheld on this shared server)" if shared() else str(e)

OPTIONS = ("split", "image", "label")
IMAGE_COLUMNS = ("image", "img", "images", "file_name", "path", "file", "filepath", "image_path")
LABEL_COLUMNS = ("label", "labels", "fine_label", "class", "category")
KINDS = ("a folder with one subfolder per class, a Hugging Face dataset folder written with save_to_disk, a .parquet "
         "or .arrow file, an imagefolder with metadata.csv, or a .csv of image paths and labels")


@dataclass(frozen=True)
class DataSource:
    path: Path
    split: str | None = None
    image: str | None = None
    label: str | None = None

    @property
    def options(self) -> bool:
        return any((self.split, self.image, self.label))


def parse_data_source(text: str) -> DataSource:
    """``PATH[?split=S&image=COL&label=COL]`` -> :class:`DataSource`; unknown options are an error."""
    raw = str(text).strip()
    if not raw:
        raise DataSourceError(f"empty data source; give {KINDS}")
    path, _, query = raw.partition("?")
    opts = urllib.parse.parse_qs(query, keep_blank_values=True)
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise DataSourceError(f"{raw!r}: unknown option(s) {unknown}; the options are split=, image= and label=")
    get = {k: (v[-1].strip() or None) for k, v in opts.items()}
    return DataSource(Path(path).expanduser(), get.get("split"), get.get("image"), get.get("label"))


def load_data_source(text: str, *, classes: Sequence[str] | None = None, name: str | None = None) -> ImageSet:
    """The labelled images of a data source (see the module's doc); ``classes``: the victim's class list (held-out
    data must use its names)."""
    src = parse_data_source(text)
    allowed_path(src.path, "data source")  # on a shared server: only under its data root (before anything is read)
    images = _load_source(src, classes, name)
    check_paths(images.paths, "image file a listing names", source=src.path)  # files a listing names too
    return images


def _load_source(src: DataSource, classes: Sequence[str] | None, name: str | None) -> ImageSet:
    p = src.path
    if not p.exists():
        raise DataSourceError(f"data source {str(p)!r} does not exist; give {KINDS}")
    if p.is_dir():
        if (p / "dataset_dict.json").is_file() or (p / "state.json").is_file():
            return _from_disk(src, classes, name)
        for meta in ("metadata.csv", "metadata.jsonl"):
            if (p / meta).is_file():
                return _from_listing(p / meta, src, classes, name or p.name, default_image="file_name")
        if src.options:
            raise DataSourceError(f"{str(p)!r} is an image folder (one subfolder per class): options "
                                  "split=/image=/label= apply to datasets and tables only")
        return load_image_folder(p, classes=classes, name=name)
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".arrow"):
        if src.split:
            raise DataSourceError(f"{p.name} is one table: split= applies to a saved DatasetDict folder")
        table = _read_table(p)
        return _from_table(table, _hf_features(table.schema.metadata), src, classes, name or p.stem, p.parent)
    if suffix == ".csv":
        return _from_listing(p, src, classes, name or p.stem, default_image=None)
    raise DataSourceError(f"{p.name}: not a data source this tool reads; give {KINDS}")


def _read_table(p: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if p.suffix.lower() == ".parquet":
            return pq.read_table(p)
        with pa.memory_map(str(p)) as f:
            try:
                return pa.ipc.open_stream(f).read_all()
            except pa.ArrowInvalid:
                f.seek(0)
                return pa.ipc.open_file(f).read_all()
    except (OSError, pa.ArrowException) as e:
        raise DataSourceError(f"cannot read {p.name} as a {p.suffix[1:]} table: {_said(e)}") from e


def _hf_features(metadata: dict | None) -> dict[str, Any]:
    """The Hugging Face features a table's schema carries (written by ``datasets``), or {}."""
    try:
        info = json.loads((metadata or {}).get(b"huggingface", b"{}"))
        return dict((info.get("info") or {}).get("features") or {})
    except (ValueError, AttributeError):
        return {}


def _from_disk(src: DataSource, classes, name) -> ImageSet:
    import datasets

    try:
        ds = datasets.load_from_disk(str(src.path))
    except (OSError, ValueError, FileNotFoundError) as e:
        raise DataSourceError(f"cannot read the dataset folder {str(src.path)!r}: {_said(e)}") from e
    split = src.split
    if isinstance(ds, datasets.DatasetDict):
        splits = sorted(ds)
        split = split or ("train" if "train" in ds else (splits[0] if len(splits) == 1 else None))
        if split is None or split not in ds:
            raise DataSourceError(f"{str(src.path)!r} holds the splits {splits}; choose one with ?split=NAME"
                                  + (f" ({split!r} is not among them)" if split else ""))
        ds = ds[split]
    elif split:
        raise DataSourceError(f"{str(src.path)!r} is a single dataset (no splits): drop ?split={split}")
    features = {k: v.to_dict() if hasattr(v, "to_dict") else v for k, v in ds.features.to_dict().items()}
    table = ds.with_format("arrow")[:]
    label = name or f"{src.path.name}" + (f"[{split}]" if split else "")
    return _from_table(table, features, src, classes, label, src.path)


def _column(what: str, given: str | None, candidates: Sequence[str], columns: Sequence[str], where: str) -> str:
    if given:
        if given not in columns:
            raise DataSourceError(f"{where}: no column {given!r} (columns: {quoted(list(columns))}); name the "
                                  f"{what} column with ?{what}=COLUMN")
        return given
    for c in candidates:
        if c in columns:
            return c
    raise DataSourceError(f"{where}: no {what} column found (columns: {quoted(list(columns))}); name it with "
                          f"?{what}=COLUMN")


def _classes_and_labels(values: list, names: list[str] | None, classes: Sequence[str] | None,
                        where: str) -> tuple[list[str], np.ndarray]:
    """Class names and integer labels from a label column (and its ClassLabel names, when known)."""
    if any(v is None for v in values):
        raise DataSourceError(f"{where}: row {next(i for i, v in enumerate(values) if v is None)} has no label")
    if names is None:
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            top = int(max(values)) if values else -1
            if min(values, default=0) < 0:
                raise DataSourceError(f"{where}: labels must be class indices >= 0 or class names")
            names = [str(i) for i in range(top + 1)]
        else:
            names = sorted({str(v) for v in values})
            values = [str(v) for v in values]
    bad = next((i for i, v in enumerate(values) if isinstance(v, (int, np.integer)) and not 0 <= v < len(names)), None)
    if bad is not None:
        raise DataSourceError(f"{where}: row {bad} has label {quoted(values[bad])} (classes 0..{len(names) - 1}"
                              + ("; -1 marks an unlabelled image" if values[bad] == -1 else "")
                              + "); the audit needs every image labelled with one of the classes")
    as_name = [names[int(v)] if isinstance(v, (int, np.integer)) else str(v) for v in values]
    if classes is None:
        classes = names
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    extra = sorted(set(as_name) - set(index))
    if extra:
        raise DataSourceError(f"{where}: classes {quoted(extra[:10])} are not among the victim's classes "
                              f"{classes[:20]}")
    return classes, np.array([index[n] for n in as_name], np.int64)


def _from_table(table, features: dict[str, Any], src: DataSource, classes, name: str, base: Path) -> ImageSet:
    where = name
    columns = table.column_names
    img_col = _column("image", src.image, IMAGE_COLUMNS, columns, where)
    lab_col = _column("label", src.label, LABEL_COLUMNS, columns, where)
    feat = features.get(lab_col) or {}
    names = list(feat["names"]) if isinstance(feat, dict) and feat.get("names") else None
    values = table.column(lab_col).to_pylist()
    cls, labels = _classes_and_labels(values, names, classes, where)
    if len(labels) == 0:
        raise DataSourceError(f"{where} holds no rows")
    blobs: list[bytes] = []
    for i, v in enumerate(table.column(img_col).to_pylist()):
        if isinstance(v, dict):  # the datasets Image feature: {"bytes": ..., "path": ...}
            if v.get("bytes"):
                blobs.append(v["bytes"])
                continue
            v = v.get("path")
        if isinstance(v, (bytes, bytearray)):
            blobs.append(bytes(v))
        elif isinstance(v, str) and v:
            f = allowed_path(Path(v) if Path(v).is_absolute() else base / v, "image file a table names")
            check_paths([f], "image file a table names", source=base)  # an uploaded table: its own files only
            if not f.is_file():
                raise DataSourceError(f"{where}: row {i}: image file {quoted(v)} does not exist")
            blobs.append(f.read_bytes())
        else:
            raise DataSourceError(f"{where}: row {i} has no image in column {img_col!r}")
    _check_classes(cls, labels, where)
    ids = np.array([f"{name}/{i:06d}" for i in range(len(labels))])
    return ImageSet(name, labels, ids, cls, blobs=blobs)


def _from_listing(p: Path, src: DataSource, classes, name: str, default_image: str | None) -> ImageSet:
    """A CSV (or JSON lines) file listing image files and their labels; paths relative to its folder."""
    import pandas as pd

    if src.split:
        raise DataSourceError(f"{p.name} is one listing: split= applies to a saved DatasetDict folder")
    try:
        df = pd.read_json(p, lines=True) if p.suffix == ".jsonl" else pd.read_csv(p)
    except (OSError, ValueError) as e:
        raise DataSourceError(f"cannot read {p.name}: {_said(e)}") from e
    where = p.name
    img_col = _column("image", src.image, (default_image,) if default_image else IMAGE_COLUMNS, list(df.columns),
                      where)
    lab_col = _column("label", src.label, LABEL_COLUMNS, list(df.columns), where)
    values = [v.item() if hasattr(v, "item") else v for v in df[lab_col].tolist()]
    values = [None if isinstance(v, float) and np.isnan(v) else v for v in values]
    cls, labels = _classes_and_labels(values, None, classes, where)
    if len(labels) == 0:
        raise DataSourceError(f"{where} lists no images")
    paths = []
    for i, v in enumerate(df[img_col].tolist()):
        f = Path(str(v)) if Path(str(v)).is_absolute() else p.parent / str(v)
        if not f.is_file():
            raise DataSourceError(f"{where}: row {i}: image file {quoted(str(v))} does not exist")
        paths.append(f)
    _check_classes(cls, labels, where)
    ids = np.array([f.relative_to(p.parent).as_posix() if f.is_relative_to(p.parent) else str(f) for f in paths])
    return ImageSet(name, labels, ids, cls, paths=paths)


def _check_classes(classes: list[str], labels: np.ndarray, where: str) -> None:
    if len(classes) < 2:
        raise DataSourceError(f"{where}: only one class ({quoted(classes)}); an audit needs the victim's classes")
