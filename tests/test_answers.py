"""forensics.audit.answers: a black-box suspect's answers (CSV / .npy, logits or labels) and the query set export."""
from __future__ import annotations

import numpy as np
import pytest

from forensics.audit.answers import export_queries, read_outputs
from forensics.errors import LogitsFileError

N, K = 6, 3


def _logits(seed=0):
    return np.random.default_rng(seed).normal(size=(N, K))


def _write_csv(path, columns: dict):
    import pandas as pd

    pd.DataFrame(columns).to_csv(path, index=False)
    return path


def test_read_npy_logits_and_labels(tmp_path):
    logits = _logits().astype(np.float32)
    np.save(tmp_path / "l.npy", logits)
    out = read_outputs(tmp_path / "l.npy", N, K)
    assert out.shape == (N, K)
    np.testing.assert_array_equal(out, logits)

    labels = np.array([0, 2, 1, 1, 0, 2])
    np.save(tmp_path / "y.npy", labels)
    np.testing.assert_array_equal(read_outputs(tmp_path / "y.npy", N, K), labels)

    np.save(tmp_path / "col.npy", labels[:, None])  # (N, 1) is labels too
    out = read_outputs(tmp_path / "col.npy", N, K)
    assert out.shape == (N,)
    np.testing.assert_array_equal(out, labels)


def test_read_csv_reorders_by_query_index(tmp_path):
    logits = _logits(1)
    perm = np.array([3, 0, 5, 1, 4, 2])
    cols = {"file": [f"images/q{i:06d}.png" for i in perm], "query_index": perm}
    cols.update({f"class_{k}": logits[perm, k] for k in range(K)})
    out = read_outputs(_write_csv(tmp_path / "a.csv", cols), N, K)
    assert out.shape == (N, K)
    np.testing.assert_allclose(out, logits)


def test_read_csv_without_query_index_keeps_file_order(tmp_path):
    logits = _logits(2)
    out = read_outputs(_write_csv(tmp_path / "a.csv", {f"c{k}": logits[:, k] for k in range(K)}), N, K)
    np.testing.assert_allclose(out, logits)


def test_read_csv_labels(tmp_path):
    labels = np.array([2, 0, 1, 1, 2, 0])
    perm = np.array([5, 4, 3, 2, 1, 0])
    out = read_outputs(_write_csv(tmp_path / "y.csv", {"query_index": perm, "label": labels[perm]}), N, K)
    assert out.ndim == 1
    np.testing.assert_array_equal(out, labels)


def _bad_csvs():
    logits = _logits(3)
    cols = {f"c{k}": logits[:, k] for k in range(K)}
    nan = dict(cols, c1=np.where(np.arange(N) == 2, np.nan, logits[:, 1]))
    inf = dict(cols, c0=np.where(np.arange(N) == 4, np.inf, logits[:, 0]))
    return {
        "too_few_rows": {k: v[:-1] for k, v in cols.items()},
        "too_many_cols": {**cols, "c3": logits[:, 0]},
        "too_few_cols": {"c0": logits[:, 0], "c1": logits[:, 1]},
        "nan": nan,
        "inf": inf,
        "duplicate_query_index": {"query_index": [0, 1, 2, 2, 4, 5], **cols},
        "gap_in_query_index": {"query_index": [0, 1, 2, 3, 4, 6], **cols},
        "one_based_query_index": {"query_index": [1, 2, 3, 4, 5, 6], **cols},
        "missing_query_index": {"query_index": [0, 1, 2, None, 4, 5], **cols},
        "text_column": {**cols, "c2": ["a"] * N},
        "text_labels": {"label": ["cat"] * N},
        "nan_label": {"label": [0, 1, None, 1, 0, 2]},
    }


@pytest.mark.parametrize("case", list(_bad_csvs()))
def test_read_csv_rejects(tmp_path, case):
    path = _write_csv(tmp_path / f"{case}.csv", _bad_csvs()[case])
    with pytest.raises(LogitsFileError):
        read_outputs(path, N, K)


@pytest.mark.parametrize("case", ["rows", "cols", "nan", "3d", "scalar", "object", "text", "not_npy"])
def test_read_npy_rejects(tmp_path, case):
    path = tmp_path / f"{case}.npy"
    logits = _logits(4)
    if case == "rows":
        np.save(path, logits[:-2])
    elif case == "cols":
        np.save(path, logits[:, :2])
    elif case == "nan":
        logits[1, 1] = np.nan
        np.save(path, logits)
    elif case == "3d":
        np.save(path, logits[:, :, None].repeat(2, axis=2))
    elif case == "scalar":
        np.save(path, np.float64(1.0))
    elif case == "object":
        np.save(path, np.array([{"a": 1}] * N, dtype=object), allow_pickle=True)
    elif case == "text":
        np.save(path, np.array(["x"] * N))
    else:
        path.write_bytes(b"not an npy file")
    with pytest.raises(LogitsFileError):
        read_outputs(path, N, K)


def test_read_outputs_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(LogitsFileError, match="does not exist"):
        read_outputs(tmp_path / "missing.npy", N, K)
    for name in ("answers.txt", "answers.json", "answers"):
        (tmp_path / name).write_text("0,1,2\n")
        with pytest.raises(LogitsFileError):
            read_outputs(tmp_path / name, N, K)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LogitsFileError):
        read_outputs(empty, N, K)


def test_export_queries_writes_every_image_in_order(tmp_path):
    from helpers import toy_images
    from PIL import Image

    images = toy_images(5)
    csv = export_queries(images, tmp_path / "q")
    lines = csv.read_text().splitlines()
    assert lines[0] == "query_index,file" and lines[1:] == [f"{i},images/q{i:06d}.png" for i in range(5)]
    for i in range(5):  # original pixels (the suspect applies its own preprocessing), as RGB
        with Image.open(tmp_path / "q" / "images" / f"q{i:06d}.png") as im:
            assert np.array_equal(np.asarray(im)[..., 0], images.images[i])


def test_suffixes_are_case_insensitive(tmp_path):
    logits = _logits()
    with open(tmp_path / "UPPER.NPY", "wb") as f:  # np.save would add ".npy" to the name
        np.save(f, logits)
    np.testing.assert_array_equal(read_outputs(tmp_path / "UPPER.NPY", N, K), logits)


def test_api_answer_formats():
    from forensics.audit.answers import ANSWER_FORMATS, format_answers
    from forensics.errors import ConfigError

    z = np.array([[3.0, 1.0, 0.0, -1.0], [0.0, 0.5, 4.0, 0.1]])
    assert format_answers(z, "top1").tolist() == [0, 2]
    np.testing.assert_array_equal(format_answers(z, "logits"), z)
    p = np.exp(format_answers(z, "top3"))
    assert np.allclose(p.sum(1), 1.0)  # the unknown rest spread evenly
    soft = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    np.testing.assert_allclose(p[0, :3], soft[0, :3], rtol=1e-9)
    rounded = np.exp(format_answers(z, "probs2"))
    assert np.allclose(rounded[rounded > 0.01], np.round(rounded[rounded > 0.01], 2))
    t3 = format_answers(z, "temperature3")
    np.testing.assert_allclose(t3, z / 3 - np.log(np.exp(z / 3).sum(1, keepdims=True)), rtol=1e-9)
    assert set(ANSWER_FORMATS) >= {"logits", "top1", "top3", "probs2", "temperature3"}
    with pytest.raises(ConfigError, match="answer format"):
        format_answers(z, "probs9")


def test_empty_answers_are_refused_with_the_users_file_name(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((0, K), np.float32))
    with pytest.raises(LogitsFileError, match=r"my-answers.npy: holds no answers"):
        read_outputs(tmp_path / "x.npy", None, K, name="my-answers.npy")
    np.save(tmp_path / "y.npy", np.array([0, 1, 2.5]))
    with pytest.raises(LogitsFileError, match="whole numbers from 0 to"):
        read_outputs(tmp_path / "y.npy", None, K)


def test_rows_of_probabilities_are_read_as_log_probabilities_and_said_so(tmp_path):
    from forensics.audit.answers import answers_reading

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(40, 5)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    rounded = np.round(p, 2)  # an API's rounded probabilities: rows sum to 1 within a few hundredths, some are 0
    assert (rounded == 0).any() and not np.allclose(rounded.sum(1), 1.0)
    for name, arr in (("probs.npy", p), ("rounded.npy", rounded)):
        np.save(tmp_path / name, arr)
        out = read_outputs(tmp_path / name, 40, 5)
        assert np.isfinite(out).all()
        soft = np.exp(out) / np.exp(out).sum(1, keepdims=True)  # the verification's softmax gives them back
        assert np.abs(soft - arr / arr.sum(1, keepdims=True)).max() < 0.02, name
        assert np.array_equal(soft.argmax(1), arr.argmax(1))
        assert answers_reading(read_outputs(tmp_path / name, 40, 5, as_given=True)).startswith("probabilities")
    np.save(tmp_path / "logits.npy", logits)  # logits stay logits
    assert np.array_equal(read_outputs(tmp_path / "logits.npy", 40, 5), logits)
    assert answers_reading(logits) == "logits" and answers_reading(logits.argmax(1)) == "labels only"
    # a file with logits that happen to lie in [0, 1] but do not sum to 1 per row is read as logits
    small = rng.uniform(0, 1, size=(40, 5))
    np.save(tmp_path / "small.npy", small)
    assert np.array_equal(read_outputs(tmp_path / "small.npy", 40, 5), small)


def test_a_non_numeric_column_is_refused_with_the_expected_format_and_no_cell_value(tmp_path):
    (tmp_path / "junk.csv").write_text("query_index,a,b\n0,1.0,secret-cell\n1,0.5,0.5\n")
    with pytest.raises(LogitsFileError) as e:
        read_outputs(tmp_path / "junk.csv", 2, 2, name="junk.csv")
    assert "query_index,<one column per class>" in str(e.value) and "secret-cell" not in str(e.value)
