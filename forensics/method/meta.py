"""The Holmes meta-classifier and its preprocessing (estimator contract: fit / predict_proba), and the
output differences it reads (O = model - poisoned shadow on row-centred logits)."""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data.images import ImageSet
from ..engine.engine import Engine
from ..errors import ConfigError, DatasetTooSmallError
from ..models import LoadedModel
from ..runtime.rng import RNG_LOCK
from ..runtime.store import fingerprint_array

STOLEN = 1
BENIGN = 0


@dataclass(frozen=True)
class MetaConfig:
    """The paper's MLP (K -> K/2 -> K/4 -> 2, Tanh) trained with SGD; validation picks the epoch."""

    epochs: int = 300
    lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 128
    eval_every: int = 10
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.eval_every < 1 or self.batch_size < 1:
            raise ConfigError("MetaConfig epochs, eval_every and batch_size must be >= 1")
        if not 0 < self.lr < 10:
            raise ConfigError(f"The 'lr' parameter of MetaConfig must be in (0, 10). Got {self.lr} instead.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def center_rows(logits: np.ndarray) -> np.ndarray:
    """Logits are defined up to a per-row constant: subtract each row's mean."""
    z = np.asarray(logits, np.float64)
    return z - z.mean(1, keepdims=True)


def output_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """O = A - B on row-centred logits (rows are the same samples in the same order)."""
    if np.shape(a) != np.shape(b):
        raise ValueError(f"output shapes differ: {np.shape(a)} vs {np.shape(b)}")
    return center_rows(a) - center_rows(b)


def l2_rows(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(n, 1e-12)


@contextlib.contextmanager
def _one_thread():
    """One intra-op thread for the MLP's tiny tensors: with two, every one of its thousands of small steps waits on
    OpenMP's thread hand-off (py-spy / cProfile: 52 s of a reduced demo's 287 s on a busy 2-core machine).  The
    count is restored after.  Its results do not depend on the count: no operation on tensors this small is split
    across threads (``tests/test_meta.py`` fits with both and compares bit for bit)."""
    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _MLP(nn.Module):
    def __init__(self, k: int):
        super().__init__()
        h1, h2 = max(2, k // 2), max(2, k // 4)
        self.net = nn.Sequential(nn.Linear(k, h1), nn.Tanh(), nn.Linear(h1, h2), nn.Tanh(), nn.Linear(h2, 2), nn.Tanh())

    def forward(self, x):
        return self.net(x)


class MetaClassifier:
    """Separates output differences of the victim (stolen, 1) from the benign shadow's (0).

    Preprocessing, as in the reference release: L2-normalise each row, then a RobustScaler.  The
    scaler is fitted on training rows only (``fit``); ``predict_proba(X, refit_scaler=True)``
    reproduces the release's per-suspect re-fit for the ``paper`` protocol.
    """

    def __init__(self, *, config: MetaConfig = MetaConfig()):
        self.config = config

    def fit(self, X: np.ndarray, y: np.ndarray, X_val: np.ndarray | None = None,
            y_val: np.ndarray | None = None) -> MetaClassifier:
        X = l2_rows(np.asarray(X, np.float64))
        y = np.asarray(y, np.int64)
        if len(np.unique(y)) != 2:
            raise ConfigError("the meta-classifier needs rows of both classes (stolen and benign)")
        with RNG_LOCK, _one_thread():
            return self._fit(X, y, X_val, y_val)

    def _fit(self, X, y, X_val, y_val) -> MetaClassifier:
        from sklearn.preprocessing import RobustScaler

        self.scaler_ = RobustScaler().fit(X)
        cfg = self.config
        torch.manual_seed(cfg.seed)
        g = torch.Generator().manual_seed(cfg.seed)
        self.num_features_ = X.shape[1]
        net = _MLP(self.num_features_).double()
        opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        xt = torch.from_numpy(self.scaler_.transform(X))
        yt = torch.from_numpy(y)
        has_val = X_val is not None and len(X_val)
        if has_val:
            xv = torch.from_numpy(self.scaler_.transform(l2_rows(np.asarray(X_val, np.float64))))
            yv = torch.from_numpy(np.asarray(y_val, np.int64))
        best: tuple[float, dict[str, torch.Tensor], int] = (-1.0, {}, 0)  # (accuracy, weights, epoch)
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(1, cfg.epochs + 1):
            net.train()
            perm = torch.randperm(len(xt), generator=g)
            for i in range(0, len(xt), cfg.batch_size):
                idx = perm[i:i + cfg.batch_size]
                opt.zero_grad()
                loss_fn(net(xt[idx]), yt[idx]).backward()
                opt.step()
            if has_val and (epoch % cfg.eval_every == 0 or epoch == cfg.epochs):
                net.eval()
                with torch.no_grad():
                    acc = float((net(xv).argmax(1) == yv).double().mean())
                if acc > best[0]:
                    best = (acc, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
        if has_val:
            net.load_state_dict(best[1])
            self.val_accuracy_, self.best_epoch_ = best[0], best[2]
        else:
            self.val_accuracy_, self.best_epoch_ = float("nan"), cfg.epochs
        net.eval()
        with torch.no_grad():
            self.train_accuracy_ = float((net(xt).argmax(1) == yt).double().mean())
        self.net_ = net
        return self

    def _check(self) -> None:
        if not hasattr(self, "net_"):
            raise ConfigError("this MetaClassifier is not fitted yet; call fit() first")

    def predict_proba(self, X: np.ndarray, *, refit_scaler: bool = False) -> np.ndarray:
        """(N, 2) probabilities [benign, stolen]."""
        from sklearn.preprocessing import RobustScaler

        self._check()
        X = l2_rows(np.asarray(X, np.float64))
        if X.shape[1] != self.num_features_:
            raise ConfigError(f"expected {self.num_features_} features (classes), got {X.shape[1]}")
        scaler = RobustScaler().fit(X) if refit_scaler else self.scaler_
        with torch.no_grad():
            out = self.net_(torch.from_numpy(scaler.transform(X)))
        return torch.softmax(out, 1).numpy()

    # -- persistence (safetensors + JSON, no pickle) ---------------------------------------
    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        self._check()
        folder = Path(folder)
        save_file({k: v.contiguous() for k, v in self.net_.state_dict().items()},
                  str(folder / "classifier.safetensors"))
        (folder / "classifier.json").write_text(json.dumps({
            "config": self.config.to_dict(), "num_features": self.num_features_,
            "center": self.scaler_.center_.tolist(), "scale": self.scaler_.scale_.tolist(),
            "val_accuracy": self.val_accuracy_, "train_accuracy": self.train_accuracy_,
            "best_epoch": self.best_epoch_}, indent=2))

    @classmethod
    def load(cls, folder: Path) -> MetaClassifier:
        from safetensors.torch import load_file
        from sklearn.preprocessing import RobustScaler

        folder = Path(folder)
        info = json.loads((folder / "classifier.json").read_text())
        self = cls(config=MetaConfig(**info["config"]))
        self.num_features_ = info["num_features"]
        self.net_ = _MLP(self.num_features_).double()
        self.net_.load_state_dict(load_file(str(folder / "classifier.safetensors")))
        self.net_.eval()
        self.scaler_ = RobustScaler()
        self.scaler_.center_ = np.array(info["center"])
        self.scaler_.scale_ = np.array(info["scale"])
        self.scaler_.n_features_in_ = self.num_features_
        self.val_accuracy_, self.train_accuracy_ = info["val_accuracy"], info["train_accuracy"]
        self.best_epoch_ = info["best_epoch"]
        return self


# --------------------------------------------------------------------------------------------
# stage 2: the output differences on clean D_s and the meta-classifiers, through the artifact store


@dataclass
class MetaEvidence:
    """The meta-classifiers and what they were fitted on.

    ``split`` holds positions in D_s (train / val / verify): ``classifier`` is fitted on the train
    rows and selected on the val rows, so the verify rows are unseen; ``paper_classifier`` is fitted
    on every row, as the reference release does.  ``logits_ds``: victim / poisoned / benign logits
    on clean D_s."""

    classifier: MetaClassifier
    paper_classifier: MetaClassifier
    split: dict[str, np.ndarray]
    logits_ds: dict[str, np.ndarray]


def fit_meta_classifiers(engine: Engine, victim: LoadedModel, poisoned: LoadedModel, benign: LoadedModel,
                         ds_set: ImageSet, meta_cfg: MetaConfig, train_fraction: float, val_fraction: float,
                         rng: np.random.Generator) -> MetaEvidence:
    """Output differences V - P (stolen) and B - P (benign) on clean D_s, split at random into ``train_fraction``
    (fits the classifier), ``val_fraction`` (selects its epoch) and the rest (verification), and both classifiers
    fitted with ``meta_cfg`` (or reused from the store)."""
    logits_ds = {"victim": engine.logits(victim, ds_set), "poisoned": engine.logits(poisoned, ds_set),
                 "benign": engine.logits(benign, ds_set)}
    o_v = output_difference(logits_ds["victim"], logits_ds["poisoned"])
    o_b = output_difference(logits_ds["benign"], logits_ds["poisoned"])
    n = len(ds_set)
    perm = rng.permutation(n)
    n_tr = int(round(train_fraction * n))
    n_va = int(round(val_fraction * n))
    split = {"train": np.sort(perm[:n_tr]), "val": np.sort(perm[n_tr:n_tr + n_va]),
             "verify": np.sort(perm[n_tr + n_va:])}
    if len(split["verify"]) < 10:
        raise DatasetTooSmallError(f"only {len(split['verify'])} D_s samples are left to verify the meta-classifier "
                                   "on; lower meta_train_fraction / meta_val_fraction, raise gamma, or add data")

    def xy(rows):
        return np.concatenate([o_v[rows], o_b[rows]]), np.r_[np.full(len(rows), STOLEN), np.full(len(rows), BENIGN)]

    inputs = {"victim": victim.fingerprint, "poisoned": poisoned.fingerprint, "benign": benign.fingerprint,
              "ds": ds_set.fingerprint, "features": fingerprint_array(np.stack([o_v, o_b]))}

    def fit(tmp: Path):
        x_tr, y_tr = xy(split["train"])
        x_va, y_va = xy(split["val"])
        MetaClassifier(config=meta_cfg).fit(x_tr, y_tr, x_va, y_va).save(tmp)

    def fit_paper(tmp: Path):  # the release trains on every D_s row
        x, y = xy(np.arange(n))
        MetaClassifier(config=meta_cfg).fit(x, y).save(tmp)

    keyed = {"meta": meta_cfg.to_dict(), "split": {k: v.tolist() for k, v in split.items()}}
    classifier = MetaClassifier.load(engine.store.get_or_compute("meta_classifier", keyed, inputs, fit))
    paper = MetaClassifier.load(engine.store.get_or_compute("meta_classifier_paper", {"meta": meta_cfg.to_dict()},
                                                            inputs, fit_paper))
    return MetaEvidence(classifier, paper, split, logits_ds)
