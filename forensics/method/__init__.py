"""The method's building blocks, each a function of plain inputs: the statistics, the query set, the
meta-classifier and stage 1 (loss order, shadow models, membership design).

* :mod:`.metrics` - per-sample loss and accuracy of a model's outputs;
* :mod:`.stats` - the stratified rank test, difficulty strata, the paper's protocol;
* :mod:`.queries` - :class:`QuerySet`: what a suspect must answer, shuffled;
* :mod:`.meta` - the Holmes meta-classifier and the output differences it reads (stage 2);
* :mod:`.shadows` - the victim's loss order, D_s, the poisoned, benign and reference shadows (stage 1).
"""
from .meta import MetaClassifier, MetaConfig, MetaEvidence, fit_meta_classifiers, output_difference
from .metrics import accuracy, per_sample_loss
from .queries import QuerySet, build_query_set
from .shadows import (
    LossOrder,
    MembershipDesign,
    ReferencePairs,
    Shadows,
    loss_order,
    select_ds,
    train_benign_shadow,
    train_poisoned_shadow,
    train_reference_pairs,
    train_reference_shadow,
)
from .stats import difficulty_strata, stratified_rank_test, stratum_weights

__all__ = ["LossOrder", "MembershipDesign", "MetaClassifier", "MetaConfig", "MetaEvidence", "QuerySet",
           "ReferencePairs", "Shadows",
           "accuracy", "build_query_set", "difficulty_strata", "fit_meta_classifiers", "loss_order",
           "output_difference", "per_sample_loss", "select_ds", "stratified_rank_test", "stratum_weights",
           "train_benign_shadow", "train_poisoned_shadow", "train_reference_pairs",
           "train_reference_shadow"]
