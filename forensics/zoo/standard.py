"""The standard attack zoo, registered on import: what ``holmes-forensics bench`` and the stress test build from a
victim.

Weight-derived thefts (fine-tuning at several strengths, with augmentation, label smoothing, noisy labels, strong
weight decay or the victim's own labels; pruning with and without fine-tuning; int8 / int4 weights; Gaussian weight
noise; averaging with an innocent model; re-estimated normalisation statistics; a combination), a re-trained tail
(nothing of a victim that trained only its tail survives: a control),
output-derived thefts (distillation at three temperatures and label-query extraction, into the victim's foundation,
into another pretrained foundation, and from scratch into a ResNet-18; data-free distillation on synthetic
low-frequency images, :func:`forensics.data.images.synthetic_images`), black-box answers (top-1, top-3, rounded
probabilities, temperature) and innocent models (the same foundation with a spread of recipes and data, another
foundation, from scratch, and a student of an innocent teacher).  The data keys (``aux``, ``innocent``,
``innocent/2``, ``innocent+aux``, ``synthetic``) are those of a :class:`~forensics.zoo.entries.ZooContext`.
"""
from __future__ import annotations

from typing import Any

from .entries import OTHER_FOUNDATION, SCRATCH, ZooEntry, register_zoo_entry


def _entry(id: str, title: str, group: str, attack: str, **kw: Any) -> ZooEntry:
    return ZooEntry(id, title, group, attack, **kw)


STANDARD_ZOO: tuple[ZooEntry, ...] = (
    # weight-derived
    _entry("direct-copy", "direct copy", "copy", "direct_copy"),
    _entry("fine-tune-light", "fine-tune, 1 epoch lr 1e-4", "fine-tune", "fine_tune", train={"epochs": 1, "lr": 1e-4}),
    _entry("fine-tune", "fine-tune, 3 epochs lr 1e-3", "fine-tune", "fine_tune", train={"epochs": 3}),
    _entry("fine-tune-heavy", "fine-tune, 10 epochs lr 3e-3, 2 blocks", "fine-tune", "fine_tune",
           train={"epochs": 10, "lr": 3e-3, "trainable_blocks": 2}),
    _entry("fine-tune-augmented", "fine-tune with augmentation", "fine-tune", "fine_tune",
           train={"epochs": 3, "augment": True}),
    _entry("fine-tune-label-smoothing", "fine-tune with label smoothing 0.1", "fine-tune", "fine_tune",
           train={"epochs": 3, "label_smoothing": 0.1}),
    _entry("fine-tune-victim-labels", "fine-tune on the victim's labels", "fine-tune", "fine_tune", train={"epochs": 3},
           params={"pseudo_labels": True}),
    _entry("prune-20", "prune 20 %", "pruning", "prune", params={"amount": 0.2}),
    _entry("prune-40-fine-tune", "prune 40 % + fine-tune (all layers)", "pruning", "prune",
           train={"epochs": 3, "trainable_blocks": None},
           params={"amount": 0.4, "fine_tune": True}),
    _entry("int8", "int8 weights", "quantisation", "quantize", params={"bits": 8}),
    _entry("int4", "int4 weights", "quantisation", "quantize", params={"bits": 4}),
    # what the victim trained re-initialised and re-trained: nothing of it survives (for a victim that trained only
    # its last stage), a negative-like control rather than a theft to catch
    _entry("retrain-last-stage", "re-trained last stage + head", "partial re-training", "retrain_tail",
           params={"blocks": 1}),
    # weight-space edits, normalisation statistics, noisy or regularised training
    # (noise on every layer: 0.02 sd keeps the demo victim's accuracy, 0.05 sd costs a tenth of it, 0.1 sd ruins it)
    _entry("weight-noise", "Gaussian weight noise (0.02 sd)", "weight-space edit", "weight_noise",
           params={"sigma": 0.02}),
    _entry("weight-noise-fine-tune", "weight noise (0.05 sd) + fine-tune", "weight-space edit", "weight_noise",
           train={"epochs": 3}, params={"sigma": 0.05, "fine_tune": True}),
    _entry("weight-average", "averaged with an innocent model (0.5)", "weight-space edit", "weight_average",
           params={"weight": 0.5}, seed_offset=1300),
    _entry("norm-recalibrated", "normalisation statistics re-estimated on the thief's data",
           "normalisation statistics", "norm_recalibration"),
    _entry("norm-recalibrated-fine-tune", "normalisation statistics re-estimated + fine-tune",
           "normalisation statistics", "norm_recalibration", train={"epochs": 3}, params={"fine_tune": True}),
    _entry("fine-tune-noisy-labels", "fine-tune on 30 % noisy labels", "noisy or regularised training", "fine_tune",
           train={"epochs": 3}, params={"label_noise": 0.3}),
    _entry("fine-tune-weight-decay", "fine-tune with strong weight decay (0.5), 5 epochs lr 2e-3",
           "noisy or regularised training", "fine_tune", train={"epochs": 5, "lr": 2e-3, "weight_decay": 0.5}),
    _entry("prune-30-fine-tune-int8", "prune 30 % + fine-tune + int8", "combination", "prune", train={"epochs": 3},
           params={"amount": 0.3, "fine_tune": True, "quantize_bits": 8}),
    # output-derived, into the victim's foundation
    _entry("distill-t1", "distill, T = 1", "distillation", "distill", train={"temperature": 1.0}),
    _entry("distill-t4", "distill, T = 4", "distillation", "distill", train={"temperature": 4.0}),
    _entry("distill-t10", "distill, T = 10", "distillation", "distill", train={"temperature": 10.0}),
    _entry("label-extraction", "label-query extraction", "label extraction", "label_extraction"),
    # output-derived, into another backbone
    _entry("distill-other-foundation", "distill into another pretrained foundation", "distillation, other foundation",
           "distill",
           student=OTHER_FOUNDATION),
    _entry("label-extraction-other-foundation", "label extraction into another pretrained foundation",
           "label extraction, other foundation", "label_extraction",
           student=OTHER_FOUNDATION),
    _entry("distill-resnet18-scratch", "distill from scratch into ResNet-18", "distillation, from scratch",
           "distill", student=SCRATCH + "resnet18",
           train={"epochs": 15, "lr": 2e-3, "trainable_blocks": None}),
    # data-free: the thief has no data and queries the victim with synthetic images
    _entry("data-free-distill", "data-free distillation (synthetic low-frequency queries), T = 4",
           "data-free distillation", "distill",
           data="synthetic", train={"temperature": 4.0}),
    # black-box: what the suspect's API returns
    _entry("api-top1-fine-tune", "fine-tune, API top-1", "black-box API", "fine_tune", train={"epochs": 3},
           answers="top1"),
    _entry("api-top3-fine-tune", "fine-tune, API top-3", "black-box API", "fine_tune", train={"epochs": 3},
           answers="top3"),
    _entry("api-probs2-fine-tune", "fine-tune, API probabilities 2 decimals", "black-box API", "fine_tune",
           train={"epochs": 3},
           answers="probs2"),
    _entry("api-temperature3-distill", "distill T = 4, API temperature 3", "black-box API", "distill",
           answers="temperature3"),
    _entry("api-top1-label-extraction", "label-query extraction, API top-1", "black-box API", "label_extraction",
           answers="top1"),
    # innocent models: never see the victim
    _entry("innocent-victim-recipe", "innocent, victim's recipe", "innocent", "innocent", data="innocent",
           seed_offset=100),
    _entry("innocent-other-seed", "innocent, other seed", "innocent", "innocent", data="innocent", seed_offset=300),
    # the victim's own seed: the same initial head and the same shuffles and dropout masks, on other data (0 and
    # 42 are everyone's defaults) - the lineage test's hardest negative
    _entry("innocent-victim-seed", "innocent, the victim's own seed", "innocent", "innocent", data="innocent"),
    _entry("innocent-victim-seed-thief-data", "innocent, the victim's own seed, on the thief's data", "innocent",
           "innocent", data="aux"),
    _entry("innocent-2-blocks", "innocent, 2 blocks", "innocent", "innocent", data="innocent",
           train={"trainable_blocks": 2}, seed_offset=400),
    _entry("innocent-half-data", "innocent, half the data", "innocent", "innocent", data="innocent/2", seed_offset=500),
    _entry("innocent-label-smoothing", "innocent, label smoothing 0.1", "innocent", "innocent", data="innocent",
           train={"label_smoothing": 0.1},
           seed_offset=600),
    _entry("innocent-6000-images", "innocent, 6,000 images", "innocent", "innocent", data="innocent+aux",
           seed_offset=700),
    _entry("innocent-12-epochs", "innocent, 12 epochs lr 3e-3", "innocent", "innocent", data="innocent",
           train={"epochs": 12, "lr": 3e-3},
           seed_offset=800),
    _entry("innocent-augmented", "innocent, augmentation", "innocent", "innocent", data="innocent",
           train={"augment": True}, seed_offset=900),
    _entry("innocent-thief-data", "innocent, on the thief's data, 10 epochs lr 2e-3", "innocent", "innocent",
           data="aux",
           train={"epochs": 10, "lr": 2e-3}, seed_offset=200),
    _entry("innocent-other-foundation", "innocent, another pretrained foundation", "innocent", "innocent",
           data="innocent", student=OTHER_FOUNDATION,
           seed_offset=1000),
    _entry("innocent-resnet18-scratch", "innocent, from scratch (ResNet-18)", "innocent", "innocent",
           data="innocent", student=SCRATCH + "resnet18",
           train={"epochs": 15, "lr": 2e-3, "trainable_blocks": None}, seed_offset=1100),
    _entry("innocent-student", "innocent, student of an innocent teacher", "innocent", "innocent_distilled", data="aux",
           params={"teacher_data": "innocent"}, seed_offset=1200),
)

for _e in STANDARD_ZOO:
    register_zoo_entry(_e)
