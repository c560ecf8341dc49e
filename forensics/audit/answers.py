"""A black-box suspect: writing the query set it must answer, reading its answers (logits or labels), and
the answer formats of APIs (:func:`format_answers`: top-1 only, top-k, rounded probabilities, temperature)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..data.images import ImageSet
from ..errors import ConfigError, LogitsFileError

QUERIES_CSV = "queries.csv"


def export_queries(queries: ImageSet, out_dir: str | Path) -> Path:
    """Write every query image as PNG (original pixels; the suspect applies its own preprocessing)
    and ``queries.csv`` giving the order in which answers must come back."""
    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    with open(out / QUERIES_CSV, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["query_index", "file"])
        for i in range(len(queries)):
            name = f"images/q{i:06d}.png"
            queries.pil(i).save(out / name)
            w.writerow([i, name])
    return out / QUERIES_CSV


PROBABILITY_SUM_TOLERANCE = 0.05  # rows of an API's rounded probabilities sum to 1 within this


def are_probabilities(arr: np.ndarray) -> bool:
    """Whether answers (N, K) are probabilities, not logits: every value in [0, 1] and every row summing to 1
    (within :data:`PROBABILITY_SUM_TOLERANCE`, for APIs that round).  Logits almost never do both."""
    return (arr.ndim == 2 and arr.shape[1] > 1 and arr.size > 0 and float(arr.min()) >= 0.0
            and float(arr.max()) <= 1.0 and bool(np.all(np.abs(arr.sum(1) - 1.0) <= PROBABILITY_SUM_TOLERANCE)))


def answers_reading(arr: np.ndarray) -> str:
    """How answers as given are read, in a card's words."""
    if arr.ndim == 1:
        return "labels only"
    return "probabilities (read as log-probabilities)" if are_probabilities(arr) else "logits"


def probabilities_as_logits(p: np.ndarray) -> np.ndarray:
    """Log-probabilities: logits of the same softmax.  A probability an API rounded to 0 counts as half of the
    smallest one it gave."""
    positive = p[p > 0]
    floor = 0.5 * float(positive.min()) if positive.size else 1e-12
    return np.log(np.where(p > 0, p, floor))


def read_outputs(path: str | Path, n_queries: int | None, num_classes: int | None, *,
                 name: str | None = None, as_given: bool = False) -> np.ndarray:
    """Logits (N, K) or labels (N,) from ``.npy`` or ``.csv``, in query order.

    A CSV may carry a ``query_index`` column (rows are then put in query order, and every index
    must appear exactly once) and either a ``label`` column or one column per class.  ``n_queries`` or
    ``num_classes`` None: that count is not checked (the query set is not built yet).  ``name``: how
    messages call the file (the user's own file name; default its path).  Rows of probabilities
    (:func:`are_probabilities`) are returned as log-probabilities, which the verification reads like logits
    (``as_given``: as they are in the file).
    """
    path = Path(path)
    shown = name or str(path)
    if not path.is_file():
        raise LogitsFileError(f"logits file {shown!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise LogitsFileError(f"{shown} is not a readable .npy array of numbers ({e}); save it with "
                                  "numpy.save(path, logits)") from e
    elif suffix == ".csv":
        import pandas as pd

        try:
            df = pd.read_csv(path)
        except (ValueError, OSError, pd.errors.ParserError) as e:
            raise LogitsFileError(f"{shown} is not a readable CSV ({e})") from e
        if "query_index" in df.columns:
            qi = df.pop("query_index")
            if qi.isna().any() or not np.array_equal(np.sort(qi.to_numpy()), np.arange(len(qi))):
                raise LogitsFileError(f"{shown}: query_index must list each of 0..{len(qi) - 1} exactly once "
                                      "(the indices of queries.csv)")
            df = df.iloc[np.argsort(qi.to_numpy(), kind="stable")]
        df = df.drop(columns=[c for c in ("file",) if c in df.columns])
        if list(df.columns) == ["label"]:
            arr = df["label"].to_numpy()
        else:
            try:
                arr = df.to_numpy(dtype=np.float64)
            except ValueError as e:
                raise LogitsFileError(
                    f"{shown}: a column is not numeric; expected a header `query_index,<one column per class>` "
                    "with one row of logits or probabilities per query (or `query_index,label` with class "
                    "indices), every value a number") from e
    else:
        raise LogitsFileError(f"{shown}: give the suspect's answers as .csv or .npy")
    if arr.dtype.kind not in "iuf":
        raise LogitsFileError(f"{shown}: expected numbers, found dtype {arr.dtype}")
    if arr.ndim not in (1, 2):  # checked first: a 0-d array has no rows to count
        raise LogitsFileError(f"{shown}: expected a 2-D array (queries x classes) or 1-D labels, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise LogitsFileError(f"{shown}: holds no answers (0 rows); answer every query of queries.csv, in its order")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if n_queries is not None and arr.shape[0] != n_queries:
        raise LogitsFileError(f"{shown}: {arr.shape[0]} rows for {n_queries} queries; answer every query of "
                              "queries.csv, in its order")
    if num_classes is not None and arr.ndim == 2 and arr.shape[1] != num_classes:
        raise LogitsFileError(f"{shown}: {arr.shape[1]} columns but the victim has {num_classes} classes; give one "
                              "logit per class (or a single 'label' column)")
    if not np.all(np.isfinite(arr)):
        raise LogitsFileError(f"{shown}: contains NaN or infinite values; re-export the suspect's answers")
    if arr.ndim == 1 and num_classes is not None and (np.any(arr != np.round(arr)) or arr.min() < 0
                                                      or arr.max() >= num_classes):
        raise LogitsFileError(f"{shown}: labels must be whole numbers from 0 to {num_classes - 1} (the class "
                              "indices)")
    if not as_given and are_probabilities(arr):
        return probabilities_as_logits(arr)
    return arr


# --------------------------------------------------------------------------------------------
# what a black-box API returns: a suspect behind an API may not give its logits


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-12, None))


def _softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    z = np.asarray(z, np.float64) / t
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _top_k(z: np.ndarray, k: int) -> np.ndarray:
    p = _softmax(z)
    k = min(k, p.shape[1])
    top = np.argsort(-p, axis=1, kind="stable")[:, :k]
    kept = np.take_along_axis(p, top, 1)
    rest = np.clip(1.0 - kept.sum(1, keepdims=True), 1e-6, None) / max(p.shape[1] - k, 1)
    out = np.repeat(rest, p.shape[1], axis=1)
    np.put_along_axis(out, top, kept, 1)
    return _log(out)


def _rounded(z: np.ndarray, decimals: int) -> np.ndarray:
    p = np.round(_softmax(z), decimals)
    return _log(np.where(p > 0, p, 0.25 * 10.0 ** -decimals))  # "0.00" means below half a unit


ANSWER_FORMATS = {
    "logits": ("the logits themselves", lambda z: np.asarray(z, np.float64)),
    "top1": ("the top-1 label only", lambda z: np.asarray(z).argmax(1).astype(np.int64)),
    "top3": ("the 3 most likely classes with their probabilities (the rest unknown, spread evenly)",
             lambda z: _top_k(z, 3)),
    "probs2": ("every class's probability rounded to 2 decimals", lambda z: _rounded(z, 2)),
    "temperature3": ("probabilities of a softmax at temperature 3", lambda z: _log(_softmax(z, 3.0))),
}


def format_answers(logits: np.ndarray, fmt: str) -> np.ndarray:
    """What an API that returns ``fmt`` (see :data:`ANSWER_FORMATS`) answers for these logits: labels (N,)
    or log-probabilities (N, K), which the verification reads like logits."""
    if fmt not in ANSWER_FORMATS:
        raise ConfigError(f"unknown answer format {fmt!r}; choose one of {sorted(ANSWER_FORMATS)}")
    return ANSWER_FORMATS[fmt][1](logits)


def check_outputs(outputs: np.ndarray, n: int, k: int) -> np.ndarray:
    """Answers to ``n`` queries: logits (n, k) as float64, or labels (n,) as int64; clear errors otherwise."""
    out = np.asarray(outputs)
    if out.dtype.kind not in "biuf":
        raise LogitsFileError(f"answers must be numbers (logits, or class indices as labels), not {out.dtype} "
                              "values; map the API's label names to the victim's class indices first")
    if out.ndim == 2 and out.shape == (n, 1):
        out = out[:, 0]
    if out.ndim == 1:
        if out.shape[0] != n:
            raise LogitsFileError(f"got {out.shape[0]} labels for {n} queries; answer every query, in the order of "
                                  "queries.csv")
        as_float = out.astype(np.float64)
        whole = np.all(np.isfinite(as_float)) and not np.any(as_float != np.round(as_float))
        if not whole or out.min() < 0 or out.max() >= k:
            raise LogitsFileError(f"labels must be integers in [0, {k - 1}]")
        return out.astype(np.int64)
    if out.ndim != 2 or out.shape != (n, k):
        raise LogitsFileError(f"expected logits of shape ({n}, {k}) (one row per query, one column per class) "
                              f"or {n} labels; got shape {out.shape}")
    out = out.astype(np.float64)
    if not np.all(np.isfinite(out)):
        bad = np.argwhere(~np.isfinite(out))[0]
        raise LogitsFileError(f"the logits contain NaN or infinite values (first at query {bad[0]}, class {bad[1]}); "
                              "re-export them")
    return out
