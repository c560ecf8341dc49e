"""forensics.method.queries: the shuffled query set and where each query came from."""
from __future__ import annotations

import numpy as np
from helpers import toy_images

from forensics.method.queries import HELDOUT, PRIVATE, build_query_set


def test_query_set_mixes_sources_and_finds_every_row():
    private, heldout = toy_images(30, name="priv"), toy_images(20, seed=1, name="held")
    rows, controls = np.array([0, 3, 7, 12, 29]), np.arange(20)
    q = build_query_set(private, heldout, rows, controls, seed=5)
    assert len(q) == 25 and sorted(q.source.tolist()) == [PRIVATE] * 5 + [HELDOUT] * 20
    assert q.source.tolist() != sorted(q.source.tolist())  # shuffled: the suspect cannot tell them apart
    pos = q.positions(PRIVATE, rows)
    assert np.array_equal(q.images.images[pos], private.images[rows])
    assert np.array_equal(q.images.images[q.positions(HELDOUT, controls)], heldout.images)
    assert all(i.startswith(("private:", "heldout:")) for i in q.images.ids)
    again = build_query_set(private, heldout, rows, controls, seed=5)
    other = build_query_set(private, heldout, rows, controls, seed=6)
    assert again.fingerprint == q.fingerprint and other.fingerprint != q.fingerprint


def test_query_set_without_heldout_data():
    private = toy_images(10)
    q = build_query_set(private, None, np.arange(4), np.zeros(0, np.int64), seed=0)
    assert len(q) == 4 and set(q.source.tolist()) == {PRIVATE}
