"""Per-sample scores of a classifier's outputs."""
from __future__ import annotations

import numpy as np


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of rows whose arg-max is the label; ``logits`` may also be predicted labels (N,)."""
    out = np.asarray(logits)
    pred = out if out.ndim == 1 else out.argmax(1)
    return float((pred == np.asarray(labels)).mean())


def per_sample_loss(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Cross-entropy of each row (float64)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(1, keepdims=True)
    lse = np.log(np.exp(z).sum(1))
    return lse - z[np.arange(len(z)), np.asarray(labels)]
