"""The query set a suspect must answer: D_s, the members and the controls, shuffled so that the
suspect cannot tell which of its answers matter."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..data.images import ImageSet, concat

PRIVATE, HELDOUT = 0, 1


@dataclass
class QuerySet:
    """The query images in the order a suspect answers them, and where each came from."""

    images: ImageSet
    source: np.ndarray     # PRIVATE (0) or HELDOUT (1) per query
    row: np.ndarray        # the row in that data set

    def __len__(self) -> int:
        return len(self.images)

    @property
    def fingerprint(self) -> str:
        """Answers are tied to this: answers to another query set are refused."""
        return self.images.fingerprint

    @cached_property
    def _lookup(self) -> dict[tuple[int, int], int]:
        return {(int(s), int(r)): i for i, (s, r) in enumerate(zip(self.source, self.row, strict=True))}

    def has_rows(self, source: int, rows: np.ndarray) -> bool:
        return all((source, int(r)) in self._lookup for r in rows)

    def positions(self, source: int, rows: np.ndarray) -> np.ndarray:
        """Positions in the query set of the given rows of the private (0) or held-out (1) data."""
        return np.array([self._lookup[(source, int(r))] for r in rows], dtype=np.int64)


def build_query_set(private: ImageSet, heldout: ImageSet | None, private_rows: np.ndarray,
                    control_rows: np.ndarray, seed: int) -> QuerySet:
    """``private_rows`` (D_s and the members) and ``control_rows`` of the held-out data, shuffled."""
    parts = [private.subset(private_rows)]
    src = [np.full(len(private_rows), PRIVATE, np.int64)]
    rows = [private_rows]
    if heldout is not None:
        parts.append(heldout.subset(control_rows))
        src.append(np.full(len(control_rows), HELDOUT, np.int64))
        rows.append(control_rows)
    order = np.random.default_rng(seed).permutation(sum(len(p) for p in parts))
    tagged = []
    for p, name in zip(parts, ("private", "heldout")[:len(parts)], strict=True):
        q = p.subset(np.arange(len(p)))
        q.ids = np.array([f"{name}:{i}" for i in q.ids])
        tagged.append(q)
    images = concat(tagged, "queries").subset(order, "queries")
    return QuerySet(images, np.concatenate(src)[order], np.concatenate(rows)[order])
