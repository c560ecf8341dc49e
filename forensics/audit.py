"""The Holmes pipeline: stage 1 (loss order, shadows), stage 2 (features, meta-classifier), stage 3
(verification), with every stage result kept in the artifact store.

    audit = prepare_audit(victim, foundation, private, heldout, AuditConfig(), engine)
    verdict = verify_model(audit, engine, suspect)           # white-box: a model
    verdict = verify_outputs(audit, logits, name="api")       # black-box: its outputs on the queries
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .data import ImageSet, Trigger, concat
from .engine import Engine, TrainConfig, per_sample_loss, targets_fingerprint, train_stored
from .errors import ClassCountMismatchError, ConfigError, DatasetTooSmallError, LogitsFileError
from .meta import BENIGN, STOLEN, MetaClassifier, MetaConfig, output_difference
from .models import LoadedModel
from .stats import difficulty_strata, heldout_meta_test, paper_protocol, stratified_rank_test, stratum_weights
from .store import read_arrays, write_arrays

PROTOCOLS = ("membership", "holmes", "paper")


@dataclass(frozen=True)
class AuditConfig:
    """Every setting of an audit; defaults follow the paper where it has one."""

    gamma: float = 0.1
    lam: float = 0.5
    target_class: int = 0
    trigger: Trigger = Trigger()
    train: TrainConfig = TrainConfig()
    poison_train: TrainConfig = TrainConfig(epochs=3)
    meta: MetaConfig = MetaConfig()
    meta_train_fraction: float = 0.5
    meta_val_fraction: float = 0.2
    member_fraction: float = 0.5
    strata: int = 10
    stratum_weighting: str = "quadratic"
    protocol: str = "membership"
    alpha: float = 0.01
    paper_draws: int = 40
    paper_m: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        rules = [
            ("gamma", 0 < self.gamma < 0.5, "in (0, 0.5)"),
            ("lam", 0 < self.lam < 1, "in (0, 1)"),
            ("target_class", self.target_class >= 0, ">= 0"),
            ("meta_train_fraction", 0 < self.meta_train_fraction < 1, "in (0, 1)"),
            ("meta_val_fraction", 0 <= self.meta_val_fraction < 1 - self.meta_train_fraction,
             "in [0, 1 - meta_train_fraction)"),
            ("member_fraction", 0 < self.member_fraction < 1, "in (0, 1)"),
            ("strata", 1 <= self.strata <= 100, "in [1, 100]"),
            ("stratum_weighting", self.stratum_weighting in ("flat", "quadratic"), "'flat' or 'quadratic'"),
            ("protocol", self.protocol in PROTOCOLS, f"one of {PROTOCOLS}"),
            ("alpha", 0 < self.alpha < 1, "in (0, 1)"),
            ("paper_draws", self.paper_draws >= 1, ">= 1"),
            ("paper_m", self.paper_m >= 2, ">= 2"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ConfigError(f"The {name!r} parameter of AuditConfig must be {rule}. "
                                  f"Got {getattr(self, name)!r} instead.")
        object.__setattr__(self, "train", replace(self.train, seed=self.seed))
        object.__setattr__(self, "poison_train", replace(self.poison_train, seed=self.seed))
        object.__setattr__(self, "meta", replace(self.meta, seed=self.seed))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trigger"] = self.trigger.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AuditConfig":
        d = dict(d)
        d["trigger"] = Trigger(**d["trigger"])
        d["train"] = TrainConfig(**d["train"])
        d["poison_train"] = TrainConfig(**d["poison_train"])
        d["meta"] = MetaConfig(**d["meta"])
        return cls(**d)


@dataclass
class StageProgress:
    """A pipeline stage starts (``status='start'``) or ends (``'done'``)."""

    stage: str
    status: str
    detail: str = ""


Progress = Callable[[Any], None]


@dataclass
class Audit:
    """Everything stage 1 and 2 produced, plus the query set a suspect must answer."""

    config: AuditConfig
    victim: LoadedModel
    foundation: LoadedModel
    private: ImageSet
    heldout: ImageSet | None
    victim_loss: np.ndarray            # victim's loss on every private row
    ds_rows: np.ndarray                # D_s as rows of `private`, lowest loss first
    meta_split: dict[str, np.ndarray]  # positions in ds_rows: train / val / verify
    poisoned: LoadedModel
    benign: LoadedModel
    reference: LoadedModel | None
    meta: MetaClassifier
    meta_paper: MetaClassifier
    poison_success: float
    logits_ds: dict[str, np.ndarray]   # victim / poisoned / benign logits on clean D_s
    member_rows: np.ndarray
    control_rows: np.ndarray
    reference_loss_members: np.ndarray
    reference_loss_controls: np.ndarray
    queries: ImageSet                  # what a black-box suspect must answer, shuffled
    query_source: np.ndarray           # 0 = private, 1 = heldout
    query_row: np.ndarray
    histories: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return self.victim.num_classes

    @cached_property
    def _query_lookup(self) -> dict[tuple[int, int], int]:
        return {(int(s), int(r)): i for i, (s, r) in enumerate(zip(self.query_source, self.query_row))}

    def query_positions(self, source: int, rows: np.ndarray) -> np.ndarray:
        """Positions in the query set of the given rows of private (0) or heldout (1)."""
        return np.array([self._query_lookup[(source, int(r))] for r in rows], dtype=np.int64)

    def summary(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "victim": self.victim.card(),
            "foundation": self.foundation.card(),
            "poisoned_shadow": self.poisoned.card(),
            "benign_shadow": self.benign.card(),
            "reference_shadow": None if self.reference is None else self.reference.card(),
            "private": self.private.summary(),
            "heldout": None if self.heldout is None else self.heldout.summary(),
            "d_s_size": int(len(self.ds_rows)),
            "d_s_ids": self.private.ids[self.ds_rows].tolist(),
            "poison_success": self.poison_success,
            "meta_val_accuracy": self.meta.val_accuracy_,
            "meta_train_accuracy": self.meta.train_accuracy_,
            "members": int(len(self.member_rows)),
            "controls": int(len(self.control_rows)),
            "queries": int(len(self.queries)),
            "queries_fingerprint": self.queries.fingerprint,
            "histories": self.histories,
        }


def _emit(progress: Progress | None, stage: str, status: str, detail: str = "") -> None:
    if progress is not None:
        progress(StageProgress(stage, status, detail))


# --------------------------------------------------------------------------------------------
# stage 1


def loss_order(engine: Engine, victim: LoadedModel, private: ImageSet) -> np.ndarray:
    """The victim's per-sample cross-entropy on every private sample (eval transform, batched)."""
    def compute(tmp: Path):
        logits = engine.logits(victim, private)
        write_arrays(tmp / "loss.npz", loss=per_sample_loss(logits, private.labels), logits=logits)

    path = engine.store.get_or_compute("loss_order", {"data_config": str(victim.data_config)},
                                       {"victim": victim.fingerprint, "images": private.fingerprint}, compute)
    return read_arrays(path / "loss.npz")["loss"]


def select_ds(loss: np.ndarray, labels: np.ndarray, gamma: float, target_class: int) -> np.ndarray:
    """Rows of the gamma lowest-loss samples, skipping samples of the target class."""
    n_s = int(round(gamma * len(loss)))
    order = np.argsort(loss, kind="stable")
    order = order[labels[order] != target_class]
    return order[:n_s]


def prepare_audit(victim: LoadedModel, foundation: LoadedModel, private: ImageSet, heldout: ImageSet | None,
                  config: AuditConfig, engine: Engine, progress: Progress | None = None) -> Audit:
    """Run stages 1 and 2 (cached in the store) and build the query set."""
    k = victim.num_classes
    if foundation.num_classes != k:
        raise ClassCountMismatchError(f"the foundation was loaded with {foundation.num_classes} classes, the "
                                      f"victim has {k}; load the foundation with num_classes={k}",
                                      expected=k, found=foundation.num_classes)
    if private.num_classes != k:
        raise ClassCountMismatchError(f"the private data has {private.num_classes} classes, the victim {k}; "
                                      "give the data the victim was trained on", expected=k, found=private.num_classes)
    if not 0 <= config.target_class < k:
        raise ConfigError(f"target_class must be a class index in [0, {k - 1}]. Got {config.target_class} instead.")
    if heldout is not None and heldout.classes != private.classes:
        raise ConfigError(f"the held-out data's classes {heldout.classes} differ from the private data's "
                          f"{private.classes}; both must come from the same collection")
    n = len(private)
    n_s = int(round(config.gamma * n))
    if n_s < 30:
        raise DatasetTooSmallError(
            f"gamma={config.gamma} of {n} private samples gives {n_s} samples in D_s; at least 30 are needed "
            f"(to train, validate and verify the meta-classifier): use at least {math.ceil(30 / config.gamma)} "
            "samples or a larger gamma")
    if config.protocol == "membership" and heldout is None:
        raise ConfigError("the default 'membership' protocol needs held-out data from the same collection that "
                          "the victim never saw; give heldout, or choose protocol 'holmes' or 'paper'")
    if heldout is not None and len(heldout) < 100:
        raise DatasetTooSmallError(f"the held-out set has {len(heldout)} samples; give at least 100 (1,000+ "
                                   "for a powerful membership test)")
    rng = np.random.default_rng(config.seed)

    _emit(progress, "loss_order", "start", f"victim loss on {n} private samples")
    loss = loss_order(engine, victim, private)
    ds_rows = select_ds(loss, private.labels, config.gamma, config.target_class)
    if len(ds_rows) < 30:
        raise DatasetTooSmallError("fewer than 30 private samples lie outside the target class; lower "
                                   "gamma's denominator by adding data, or choose another target_class")
    _emit(progress, "loss_order", "done", f"D_s = {len(ds_rows)} lowest-loss samples")

    # poisoned shadow: from the victim, D_s replaced by triggered copies relabelled to the target
    triggered = np.zeros(n, bool)
    triggered[ds_rows] = True
    poison_labels = private.labels.copy()
    poison_labels[ds_rows] = config.target_class
    _emit(progress, "poisoned_shadow", "start")
    poisoned, h_p = train_stored(engine, "poisoned_shadow", victim, private, poison_labels, config.poison_train,
                                 trigger=config.trigger, triggered=triggered, progress=progress,
                                 label="poisoned shadow")
    ds_set = private.subset(ds_rows, "D_s")
    trig_logits = engine.logits(poisoned, ds_set, trigger=config.trigger)
    poison_success = float((trig_logits.argmax(1) == config.target_class).mean())
    _emit(progress, "poisoned_shadow", "done", f"attack success {poison_success:.2f}")

    # benign shadow: from the foundation, without the lambda lowest-loss samples
    keep = np.argsort(loss, kind="stable")[int(round(config.lam * n)):]
    keep.sort()
    _emit(progress, "benign_shadow", "start")
    benign, h_b = train_stored(engine, "benign_shadow", foundation, private.subset(keep, "benign"),
                               private.labels[keep], config.train, progress=progress, label="benign shadow")
    _emit(progress, "benign_shadow", "done")

    # membership reference: from the foundation, on a random part of D; the rest are the members
    reference, h_r = None, None
    member_rows = control_rows = np.zeros(0, np.int64)
    ref_loss_m = ref_loss_c = np.zeros(0)
    if heldout is not None:
        perm = rng.permutation(n)
        n_m = int(round(config.member_fraction * n))
        member_rows, ref_rows = np.sort(perm[:n_m]), np.sort(perm[n_m:])
        control_rows = np.arange(len(heldout))
        _emit(progress, "reference_shadow", "start")
        reference, h_r = train_stored(engine, "reference_shadow", foundation, private.subset(ref_rows, "reference"),
                                      private.labels[ref_rows], config.train, progress=progress,
                                      label="reference shadow")
        ref_loss_m = per_sample_loss(engine.logits(reference, private.subset(member_rows)), private.labels[member_rows])
        ref_loss_c = per_sample_loss(engine.logits(reference, heldout), heldout.labels)
        _emit(progress, "reference_shadow", "done")

    # stage 2: output differences on clean D_s and the meta-classifier
    _emit(progress, "meta_classifier", "start")
    logits_ds = {"victim": engine.logits(victim, ds_set), "poisoned": engine.logits(poisoned, ds_set),
                 "benign": engine.logits(benign, ds_set)}
    o_v = output_difference(logits_ds["victim"], logits_ds["poisoned"])
    o_b = output_difference(logits_ds["benign"], logits_ds["poisoned"])
    perm = rng.permutation(len(ds_rows))
    n_tr = int(round(config.meta_train_fraction * len(ds_rows)))
    n_va = int(round(config.meta_val_fraction * len(ds_rows)))
    split = {"train": np.sort(perm[:n_tr]), "val": np.sort(perm[n_tr:n_tr + n_va]), "verify": np.sort(perm[n_tr + n_va:])}
    if len(split["verify"]) < 10:
        raise DatasetTooSmallError(f"only {len(split['verify'])} D_s samples are left to verify the meta-classifier "
                                   "on; lower meta_train_fraction / meta_val_fraction, raise gamma, or add data")

    def xy(rows):
        return np.concatenate([o_v[rows], o_b[rows]]), np.r_[np.full(len(rows), STOLEN), np.full(len(rows), BENIGN)]

    meta_inputs = {"victim": victim.fingerprint, "poisoned": poisoned.fingerprint, "benign": benign.fingerprint,
                   "ds": ds_set.fingerprint, "features": targets_fingerprint(np.stack([o_v, o_b]))}

    def fit_meta(tmp: Path):
        x_tr, y_tr = xy(split["train"])
        x_va, y_va = xy(split["val"])
        MetaClassifier(config=config.meta).fit(x_tr, y_tr, x_va, y_va).save(tmp)

    def fit_meta_paper(tmp: Path):  # the release trains on every D_s row
        x, y = xy(np.arange(len(ds_rows)))
        MetaClassifier(config=config.meta).fit(x, y).save(tmp)

    meta_cfg = {"meta": config.meta.to_dict(), "split": {k2: v.tolist() for k2, v in split.items()}}
    meta = MetaClassifier.load(engine.store.get_or_compute("meta_classifier", meta_cfg, meta_inputs, fit_meta))
    meta_paper = MetaClassifier.load(engine.store.get_or_compute("meta_classifier_paper", {"meta": config.meta.to_dict()},
                                                                 meta_inputs, fit_meta_paper))
    _emit(progress, "meta_classifier", "done", f"validation accuracy {meta.val_accuracy_:.2f}")

    # the query set: D_s, members and controls, shuffled so the suspect cannot tell them apart
    priv_rows = np.union1d(ds_rows, member_rows)
    parts = [private.subset(priv_rows)]
    src = [np.zeros(len(priv_rows), np.int64)]
    rows = [priv_rows]
    if heldout is not None:
        parts.append(heldout.subset(control_rows))
        src.append(np.ones(len(control_rows), np.int64))
        rows.append(control_rows)
    order = np.random.default_rng(config.seed + 1).permutation(sum(len(p) for p in parts))
    src_all, rows_all = np.concatenate(src)[order], np.concatenate(rows)[order]
    tagged = []
    for p, name in zip(parts, ("private", "heldout")):
        q = p.subset(np.arange(len(p)))
        q.ids = np.array([f"{name}:{i}" for i in q.ids])
        tagged.append(q)
    queries = concat(tagged, "queries").subset(order, "queries")

    return Audit(config, victim, foundation, private, heldout, loss, ds_rows, split, poisoned, benign, reference,
                 meta, meta_paper, poison_success, logits_ds, member_rows, control_rows, ref_loss_m, ref_loss_c,
                 queries, src_all, rows_all,
                 histories={"poisoned_shadow": h_p, "benign_shadow": h_b, "reference_shadow": h_r})


# --------------------------------------------------------------------------------------------
# stage 3


@dataclass
class Verdict:
    """The result of verifying one suspect."""

    suspect: str
    protocol: str
    p_value: float
    delta_p: float | None
    stolen: bool
    alpha: float
    m: int
    seed: int
    evidence: dict[str, dict[str, Any]]
    fingerprint: str | None = None
    label_only: bool = False
    per_sample: dict[str, list] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        return "stolen" if self.stolen else "not stolen"

    def to_dict(self, per_sample: bool = False) -> dict[str, Any]:
        d = {"suspect": self.suspect, "protocol": self.protocol, "p_value": self.p_value, "delta_p": self.delta_p,
             "verdict": self.verdict, "alpha": self.alpha, "m": self.m, "seed": self.seed,
             "label_only": self.label_only, "fingerprint": self.fingerprint, "evidence": self.evidence}
        if per_sample:
            d["per_sample"] = self.per_sample
        return d


def query_outputs(audit: Audit, engine: Engine, suspect: LoadedModel) -> np.ndarray:
    """A model suspect's logits on the query set (white-box / local evaluation)."""
    if suspect.num_classes != audit.num_classes:
        raise ClassCountMismatchError(
            f"suspect {suspect.source} has {suspect.num_classes} classes, the victim {audit.num_classes}; a "
            "suspect must classify the victim's classes", expected=audit.num_classes, found=suspect.num_classes)
    return engine.logits(suspect, audit.queries)


def verify_model(audit: Audit, engine: Engine, suspect: LoadedModel, name: str | None = None,
                 protocol: str | None = None) -> Verdict:
    v = verify_outputs(audit, query_outputs(audit, engine, suspect), name or suspect.source, protocol=protocol)
    v.fingerprint = suspect.fingerprint
    return v


def check_outputs(audit: Audit, outputs: np.ndarray) -> np.ndarray:
    out = np.asarray(outputs)
    n, k = len(audit.queries), audit.num_classes
    if out.ndim == 2 and out.shape == (n, 1):
        out = out[:, 0]
    if out.ndim == 1:
        if out.shape[0] != n:
            raise LogitsFileError(f"got {out.shape[0]} labels for {n} queries; answer every query, in the order of "
                                  "queries.csv")
        if not np.all(np.isfinite(out.astype(np.float64))) or np.any(out != np.round(out)) or out.min() < 0 or out.max() >= k:
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


def verify_outputs(audit: Audit, outputs: np.ndarray, name: str, protocol: str | None = None) -> Verdict:
    """Verify a suspect from its outputs on ``audit.queries``: logits (N, K) or labels (N,)."""
    cfg = audit.config
    protocol = protocol or cfg.protocol
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    out = check_outputs(audit, outputs)
    label_only = out.ndim == 1
    evidence: dict[str, dict[str, Any]] = {}
    per_sample: dict[str, list] = {}

    # membership (default): stratified rank test of members against controls
    if audit.reference is not None:
        pm = audit.query_positions(0, audit.member_rows)
        pc = audit.query_positions(1, audit.control_rows)
        y_m, y_c = audit.private.labels[audit.member_rows], audit.heldout.labels[audit.control_rows]
        if label_only:
            s_m, s_c = (out[pm] != y_m).astype(float), (out[pc] != y_c).astype(float)
        else:
            s_m, s_c = per_sample_loss(out[pm], y_m), per_sample_loss(out[pc], y_c)
        both = np.r_[audit.reference_loss_members, audit.reference_loss_controls]
        n_strata = effective_strata(cfg.strata, len(pm), len(pc))
        strata = difficulty_strata(both, n_strata)
        r = stratified_rank_test(s_m, s_c, strata[:len(pm)], strata[len(pm):],
                                 stratum_weights(n_strata, cfg.stratum_weighting))
        acc_m, acc_c = _acc(out[pm], y_m), _acc(out[pc], y_c)
        evidence["membership"] = {"p_value": r.p_value, "z": r.z, "score": "error" if label_only else "loss",
                                  "n_strata": n_strata,
                                  "member_accuracy": acc_m, "control_accuracy": acc_c,
                                  "members": int(len(pm)), "controls": int(len(pc)), "strata": r.strata}
        per_sample["member_score"] = s_m.tolist()
        per_sample["control_score"] = s_c.tolist()

    # Holmes meta-classifier evidence (needs logits)
    if not label_only:
        pos = audit.query_positions(0, audit.ds_rows)
        o_s = output_difference(out[pos], audit.logits_ds["poisoned"])
        o_b = output_difference(audit.logits_ds["benign"], audit.logits_ds["poisoned"])
        ver = audit.meta_split["verify"]
        p_s = audit.meta.predict_proba(o_s[ver])
        p_b = audit.meta.predict_proba(o_b[ver])
        evidence["holmes"] = {"p_value": heldout_meta_test(p_s[:, STOLEN]),
                              "delta_p": float(np.mean(p_s[:, STOLEN] - p_b[:, STOLEN])),
                              "mean_p_stolen": float(p_s[:, STOLEN].mean()), "m": int(len(ver))}
        per_sample["ds_p_stolen"] = audit.meta.predict_proba(o_s)[:, STOLEN].tolist()
        per_sample["ds_logits"] = out[pos].tolist()
        pp = audit.meta_paper.predict_proba(o_s, refit_scaler=True)
        p_paper, draws = paper_protocol(pp[:, STOLEN], np.random.default_rng(cfg.seed), draws=cfg.paper_draws,
                                        m=cfg.paper_m)
        evidence["paper"] = {"p_value": p_paper, "delta_p": float(np.mean(pp[:, STOLEN] - pp[:, BENIGN])),
                             "m": int(min(cfg.paper_m, len(pos))), "draws": cfg.paper_draws}
    if protocol not in evidence:
        raise ConfigError(f"protocol {protocol!r} cannot run here: "
                          + ("it needs logits, not labels" if label_only else "the audit has no held-out data"))
    chosen = evidence[protocol]
    delta_p = evidence.get("holmes", {}).get("delta_p") if protocol == "membership" else chosen.get("delta_p")
    m = chosen.get("m", chosen.get("members", 0) + chosen.get("controls", 0))
    return Verdict(name, protocol, float(chosen["p_value"]), delta_p, bool(chosen["p_value"] < cfg.alpha),
                   cfg.alpha, int(m), cfg.seed, evidence, label_only=label_only, per_sample=per_sample)


MIN_PER_STRATUM = 30


def effective_strata(requested: int, n_members: int, n_controls: int) -> int:
    """Fewer strata when data are scarce: every stratum keeps about 30+ members and controls, so the
    normal approximation of the rank test holds."""
    return int(max(1, min(requested, min(n_members, n_controls) // MIN_PER_STRATUM)))


def _acc(out: np.ndarray, y: np.ndarray) -> float:
    pred = out if out.ndim == 1 else out.argmax(1)
    return float((pred == y).mean())
