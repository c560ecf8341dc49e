"""forensics.method.meta: the meta-classifier (estimator contract, saved without pickle) and output differences."""
from __future__ import annotations

import numpy as np
import pytest

from forensics.errors import ConfigError
from forensics.method.meta import MetaClassifier, MetaConfig, output_difference


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


def test_output_difference_ignores_a_constant_per_row():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    shifted = a + rng.normal(size=(5, 1))  # logits are defined up to a per-row constant
    np.testing.assert_allclose(output_difference(shifted, b), output_difference(a, b), atol=1e-12)
    with pytest.raises(ValueError, match="shapes differ"):
        output_difference(a, b[:, :3])


def test_the_fit_runs_on_one_thread_and_gives_what_two_threads_give(monkeypatch):
    """The MLP fits with one intra-op thread (its tiny steps only wait on a second one) and restores the count;
    the result is bit for bit what a fit with two threads gives (rows as wide as a 1,000-class victim's too)."""
    import contextlib

    import torch

    from forensics.method import meta

    before = torch.get_num_threads()
    real, seen = meta._one_thread, []

    @contextlib.contextmanager
    def spy():
        with real():
            seen.append(torch.get_num_threads())
            yield

    try:
        for k in (10, 1000):
            X, y = _separable(300, k=k)
            Xv, yv = _separable(100, k=k, seed=1)
            torch.set_num_threads(2)
            seen.clear()
            monkeypatch.setattr(meta, "_one_thread", spy)
            one = MetaClassifier(config=MetaConfig(epochs=30, eval_every=10)).fit(X, y, Xv, yv)
            assert seen == [1] and torch.get_num_threads() == 2  # one thread inside, the count restored after
            monkeypatch.setattr(meta, "_one_thread", contextlib.nullcontext)
            two = MetaClassifier(config=MetaConfig(epochs=30, eval_every=10)).fit(X, y, Xv, yv)
            for (name, a), b in zip(one.net_.state_dict().items(), two.net_.state_dict().values(), strict=True):
                assert torch.equal(a, b), (k, name)
            assert np.array_equal(one.predict_proba(Xv), two.predict_proba(Xv))
    finally:
        torch.set_num_threads(before)
