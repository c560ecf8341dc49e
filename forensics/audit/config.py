"""The method's settings: :class:`AuditConfig` (gamma, lambda, trigger, shadow recipes, protocol, alpha, seed)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from ..data.transforms import Trigger
from ..engine.recipe import TrainConfig
from ..errors import ConfigError
from ..method.lineage import MAX_REPLICAS, MIN_REPLICAS
from ..method.meta import MetaConfig
from ..protocols.registry import DEFAULT_PROTOCOL, get_protocol, protocol_names

STRATUM_WEIGHTINGS = ("flat", "quadratic")
MIN_QUERY_BUDGET = 60  # the membership test needs about 30 members and 30 controls
MAX_REFERENCE_PAIRS = 16  # 32 reference trainings


@dataclass(frozen=True)
class AuditConfig:
    """Every setting of an audit; defaults follow the paper where it has one.

    ``seed`` seeds every random choice of the audit, the shadow trainings and the meta-classifier
    included: the nested recipes (``train``, ``poison_train``, ``meta``) leave their own ``seed`` at
    its default, and :attr:`seeded_train` etc. give the recipes with the audit's seed filled in.
    """

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
    reference_pairs: int = 0          # 0: one reference on (1 - member_fraction) of D; P: 2P on halves, all D members
    strata: int = 10
    stratum_weighting: str = "quadratic"
    protocol: str = DEFAULT_PROTOCOL
    alpha: float = 0.01
    paper_draws: int = 40
    paper_m: int = 100
    query_budget: int | None = None   # at most this many queries (members + controls only; None: all, with D_s)
    seed: int = 0
    lineage_replicas: int = 0         # replicas of the victim's run for the lineage test (0: no lineage test)

    def __post_init__(self) -> None:
        rules = [
            ("gamma", 0 < self.gamma < 0.5, "in (0, 0.5)"),
            ("lam", 0 < self.lam < 1, "in (0, 1)"),
            ("target_class", self.target_class >= 0, ">= 0"),
            ("meta_train_fraction", 0 < self.meta_train_fraction < 1, "in (0, 1)"),
            ("meta_val_fraction", 0 <= self.meta_val_fraction < 1 - self.meta_train_fraction,
             "in [0, 1 - meta_train_fraction)"),
            ("member_fraction", 0 < self.member_fraction < 1, "in (0, 1)"),
            ("reference_pairs", 0 <= self.reference_pairs <= MAX_REFERENCE_PAIRS,
             f"0 (one reference shadow) or in [1, {MAX_REFERENCE_PAIRS}]"),
            ("strata", 1 <= self.strata <= 100, "in [1, 100]"),
            ("stratum_weighting", self.stratum_weighting in STRATUM_WEIGHTINGS, f"one of {STRATUM_WEIGHTINGS}"),
            ("protocol", self.protocol in protocol_names(), f"one of {protocol_names()}"),
            ("alpha", 0 < self.alpha < 1, "in (0, 1)"),
            ("paper_draws", 1 <= self.paper_draws <= 10_000, "in [1, 10000]"),
            ("paper_m", 2 <= self.paper_m <= 1_000_000, "in [2, 1000000]"),
            ("query_budget", self.query_budget is None or self.query_budget >= MIN_QUERY_BUDGET,
             f"None or >= {MIN_QUERY_BUDGET}"),
            ("lineage_replicas", self.lineage_replicas == 0 or MIN_REPLICAS <= self.lineage_replicas <= MAX_REPLICAS,
             f"0 (no lineage test) or in [{MIN_REPLICAS}, {MAX_REPLICAS}]"),
        ]
        for name, ok, rule in rules:
            if not ok:
                raise ConfigError(f"The {name!r} parameter of AuditConfig must be {rule}. "
                                  f"Got {getattr(self, name)!r} instead.")
        chosen = get_protocol(self.protocol)
        if (chosen.needs_weights or "lineage" in chosen.combines) and not self.lineage_replicas:
            raise ConfigError(f"the {self.protocol!r} protocol reads the lineage test, which needs replicas of the "
                              f"victim's training run: set lineage_replicas (e.g. 9; each is one training run of "
                              f"the victim's recipe)")
        if self.query_budget is not None and chosen.needs_ds:
            raise ConfigError(f"a query budget leaves D_s out of the queries, and the {self.protocol!r} protocol needs "
                              "it: use the membership protocol with a budget, or no budget")
        for part in ("train", "poison_train", "meta"):
            nested = getattr(self, part)
            if nested.seed not in (0, self.seed):
                raise ConfigError(
                    f"AuditConfig.{part}.seed is {nested.seed} but the audit's seed is {self.seed}: the audit's seed "
                    f"seeds every shadow and the meta-classifier. Set AuditConfig(seed=...) and leave {part}.seed at 0")
            if nested.seed:  # the same value as the audit's seed: store the recipe without it
                object.__setattr__(self, part, replace(nested, seed=0))

    @property
    def seeded_train(self) -> TrainConfig:
        """The benign and reference shadows' recipe (the victim's), with the audit's seed."""
        return replace(self.train, seed=self.seed)

    @property
    def seeded_poison_train(self) -> TrainConfig:
        """The poisoned shadow's recipe, with the audit's seed."""
        return replace(self.poison_train, seed=self.seed)

    @property
    def seeded_meta(self) -> MetaConfig:
        """The meta-classifier's settings, with the audit's seed."""
        return replace(self.meta, seed=self.seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trigger"] = self.trigger.to_dict()
        for name in ("lineage_replicas", "reference_pairs"):  # records of audits without them stay what they were
            if not d[name]:
                d.pop(name)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditConfig:
        """The inverse of :meth:`to_dict` (records of earlier versions, which stored the audit's seed in the
        nested recipes too, read the same)."""
        d = dict(d)
        d["trigger"] = Trigger(**d["trigger"])
        d["train"] = TrainConfig(**d["train"])
        d["poison_train"] = TrainConfig(**d["poison_train"])
        d["meta"] = MetaConfig(**d["meta"])
        return cls(**d)
