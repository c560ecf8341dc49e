"""forensics.audit.verify and forensics.audit.verdict on one small real audit (tiny timm models, toy images): the
evidence each protocol adds for logits and for labels, the checks on a suspect's answers, verdicts as data and in
words."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from helpers import make_loaded, toy_images

from forensics.audit.answers import check_outputs
from forensics.audit.build import build_audit
from forensics.audit.config import AuditConfig
from forensics.audit.spec import AuditSpec
from forensics.audit.verdict import Reading, Verdict, format_p, headline
from forensics.audit.verify import has_ds, verify_model, verify_outputs
from forensics.data.images import ImageSet
from forensics.engine.engine import Engine
from forensics.engine.recipe import TrainConfig
from forensics.engine.stored import train_stored
from forensics.errors import ClassCountMismatchError, ConfigError, LogitsFileError
from forensics.method.meta import MetaConfig
from forensics.method.queries import build_query_set
from forensics.method.shadows import LossOrder
from forensics.protocols.registry import list_protocols
from forensics.runtime.store import ArtifactStore

SHADOW = TrainConfig(epochs=1, batch_size=32, trainable_blocks=None, lr=3e-3)


def overlapping_images(n: int, seed: int, name: str) -> ImageSet:
    """toy_images whose brightness bands overlap (a seeded brightness offset per image): the classes cannot be told
    apart exactly, so a victim fits its own training rows better than unseen ones, as a real victim does (on plain
    toy_images every model reaches zero loss everywhere and the membership test has nothing to find)."""
    toy = toy_images(n, seed, name)
    shift = np.random.default_rng([seed, 7]).integers(-80, 81, (n, 1, 1))
    x = np.clip(toy.images.astype(np.int64) + shift, 0, 255).astype(np.uint8)
    if seed:  # the shift saturates some images to one flat grey: a corner pixel keeps them apart from seed 0's flat
        flat = (x == x[:, :1, :1]).all(axis=(1, 2))  # ones, as real photographs are (an audit refuses held-out images
        x[flat, 0, 0] = np.where(x[flat, 0, 0] > 127, 254, 1)  # that are also private ones)
    return ImageSet(name, toy.labels, toy.ids, toy.classes, images=x)


@pytest.fixture(scope="module")
def built(one_torch_thread, tmp_path_factory):
    """(audit, victim, foundation): the victim is the foundation fine-tuned on the private rows until it fits them
    better than unseen rows; every shadow trains one epoch."""
    engine = Engine(ArtifactStore(tmp_path_factory.mktemp("verify_store")), device="cpu", cache_blocks=None)
    private = overlapping_images(200, 0, "private")
    heldout = overlapping_images(200, 1, "heldout")
    foundation = make_loaded(seed=0)
    victim, _ = train_stored(engine, "victim", make_loaded(seed=0), private, private.labels,
                             TrainConfig(epochs=4, batch_size=16, trainable_blocks=None, lr=3e-3))
    victim.source = "test:victim"
    # gamma = 0.2 of 200 rows: 40 in D_s, enough to train, validate and verify the meta-classifier on
    config = AuditConfig(gamma=0.2, lam=0.5, train=SHADOW, poison_train=SHADOW, meta=MetaConfig(epochs=20), seed=3)
    spec = AuditSpec(victim="test:victim", foundation="test:foundation", data="test:private", heldout="test:heldout",
                     config=config)
    audit = build_audit(spec, victim, foundation, private, heldout, engine)
    return audit, victim, foundation


@pytest.fixture(scope="module")
def victim_logits(built):
    audit, victim, _ = built
    return audit.engine.logits(victim, audit.queries.images)


def runnable(label_only: bool, *, baselines: bool = False, ds: bool = True) -> set[str]:
    """The protocols that can run on an audit with held-out data, for logits or labels, and no extra queries (those
    that read weights or combine others' p-values are not run on answers)."""
    return {p.name for p in list_protocols(baselines=baselines) if p.extra_queries is None
            and not p.needs_weights and not p.combines
            and p.unavailable(has_heldout=True, label_only=label_only, has_ds=ds) is None}


def test_victim_logits_give_a_small_membership_p_and_every_protocols_evidence(built, victim_logits):
    audit, _, _ = built
    v = verify_outputs(audit, victim_logits, "the victim itself")
    assert set(v.evidence) == runnable(False) == {"membership", "holmes", "paper", "sequential"}
    assert v.protocol == "membership" and v.suspect == "the victim itself" and not v.label_only
    e = v.evidence["membership"]
    assert e["score"] == "loss"
    assert v.p_value == e["p_value"] < 1e-3 and v.stolen and v.verdict == "stolen"
    assert e["members"] == len(audit.membership.member_rows) == 100
    assert e["controls"] == len(audit.membership.control_rows) == 200
    assert v.m == e["members"] + e["controls"]
    assert v.delta_p == v.evidence["holmes"]["delta_p"]  # the membership test reports the meta-classifier's dP
    assert v.alpha == audit.config.alpha and v.seed == 3
    for name in ("holmes", "paper"):
        assert 0.0 <= v.evidence[name]["p_value"] <= 1.0
    assert len(v.per_sample["member_score"]) == 100 and len(v.per_sample["control_score"]) == 200
    assert len(v.per_sample["ds_p_stolen"]) == len(audit.loss_order.ds_rows) == 40

    with_baselines = verify_outputs(audit, victim_logits, "victim", baselines=True)
    assert set(with_baselines.evidence) == runnable(False, baselines=True)
    assert {"fingerprint", "akh"} <= set(with_baselines.evidence)
    assert "dataset_inference" not in with_baselines.evidence  # its own queries were not answered
    assert with_baselines.p_value == v.p_value


def test_a_model_that_never_saw_the_data_is_not_flagged(built):
    audit, _, foundation = built
    v = verify_outputs(audit, audit.engine.logits(foundation, audit.queries.images), "foundation")
    assert v.p_value > 0.05 and not v.stolen and v.verdict == "not stolen"


def test_labels_only_score_errors_and_drop_the_logit_protocols(built, victim_logits):
    audit, _, _ = built
    labels = victim_logits.argmax(1)
    v = verify_outputs(audit, labels, "api")
    assert v.label_only
    assert set(v.evidence) == runnable(True) == {"membership", "sequential"}
    e = v.evidence["membership"]
    assert e["score"] == "error"
    errors = np.array(v.per_sample["member_score"])
    assert set(np.unique(errors)) <= {0.0, 1.0} and e["member_accuracy"] == pytest.approx(1 - errors.mean())
    assert v.delta_p is None  # dP comes from the meta-classifier, which needs logits
    assert v.under("holmes") is None and v.under("paper") is None
    with pytest.raises(ConfigError, match=r"'holmes' protocol needs logits, not labels"):
        verify_outputs(audit, labels, "api", protocol="holmes")
    # labels as an (N, 1) column read the same
    column = verify_outputs(audit, labels[:, None], "api")
    assert column.label_only and column.p_value == v.p_value
    assert set(verify_outputs(audit, labels, "api", baselines=True).evidence) == runnable(True, baselines=True)


def test_check_outputs_refuses_bad_answers():
    n, k = 5, 3
    logits = np.random.default_rng(0).normal(size=(n, k)).astype(np.float32)
    out = check_outputs(logits, n, k)
    assert out.dtype == np.float64 and out.shape == (n, k)
    labels = check_outputs(np.array([0.0, 2.0, 1.0, 1.0, 0.0]), n, k)
    assert labels.dtype == np.int64 and labels.tolist() == [0, 2, 1, 1, 0]
    assert check_outputs(labels[:, None], n, k).tolist() == labels.tolist()

    with pytest.raises(LogitsFileError, match=r"expected logits of shape \(5, 3\).* got shape \(5, 4\)"):
        check_outputs(np.zeros((n, k + 1)), n, k)
    with pytest.raises(LogitsFileError, match=r"expected logits of shape \(5, 3\).* got shape \(4, 3\)"):
        check_outputs(np.zeros((n - 1, k)), n, k)
    with pytest.raises(LogitsFileError, match=r"got shape \(5, 3, 1\)"):
        check_outputs(np.zeros((n, k, 1)), n, k)
    with pytest.raises(LogitsFileError, match=r"answers must be numbers .* not <U3 values; map the API's label"):
        check_outputs(np.array(["cat", "dog", "cat", "cat", "dog"]), n, k)
    with pytest.raises(LogitsFileError, match=r"got 4 labels for 5 queries"):
        check_outputs(np.zeros(n - 1, int), n, k)
    bad = logits.copy()
    bad[2, 1] = np.nan
    with pytest.raises(LogitsFileError, match=r"NaN or infinite values \(first at query 2, class 1\)"):
        check_outputs(bad, n, k)
    bad[2, 1], bad[4, 0] = 0.0, np.inf
    with pytest.raises(LogitsFileError, match=r"NaN or infinite values \(first at query 4, class 0\)"):
        check_outputs(bad, n, k)
    for wrong in ([0, 1, 2, 3, 0], [0, -1, 2, 1, 0], [0, 1.5, 2, 1, 0], [0, np.nan, 2, 1, 0]):
        with pytest.raises(LogitsFileError, match=r"labels must be integers in \[0, 2\]"):
            check_outputs(np.array(wrong), n, k)


def test_verify_outputs_checks_the_answers_against_the_query_set(built, victim_logits):
    audit, _, _ = built
    n = len(audit.queries)
    with pytest.raises(LogitsFileError, match=rf"expected logits of shape \({n}, 3\)"):
        verify_outputs(audit, victim_logits[:-1], "short")
    with pytest.raises(LogitsFileError, match=r"labels must be integers in \[0, 2\]"):
        verify_outputs(audit, np.full(n, 3), "labels")


def test_verdict_round_trips_through_json(built, victim_logits):
    audit, _, _ = built
    v = verify_outputs(audit, victim_logits, "victim")
    v.fingerprint = "abc123"
    back = Verdict.from_dict(json.loads(json.dumps(v.to_dict(per_sample=True))))
    assert back == v  # every field, evidence and per-sample lists included
    lean = Verdict.from_dict(json.loads(json.dumps(v.to_dict())))
    assert lean.per_sample == {} and replace(lean, per_sample=v.per_sample) == v
    labels = verify_outputs(audit, victim_logits.argmax(1), "api")
    assert Verdict.from_dict(labels.to_dict(per_sample=True)) == labels
    d = v.to_dict()
    del d["p_value"]
    with pytest.raises(ConfigError, match=r"the record's verdict for 'victim' is incomplete \(KeyError"):
        Verdict.from_dict(d)


def test_under_reads_the_same_evidence_at_another_alpha(built, victim_logits):
    audit, _, _ = built
    v = verify_outputs(audit, victim_logits, "victim")
    assert v.under() == Reading("membership", v.p_value, v.delta_p, v.m, v.alpha)
    paper = v.evidence["paper"]
    loose = v.under("paper", alpha=0.9)
    strict = v.under("paper", alpha=1e-300)
    for r, alpha in ((loose, 0.9), (strict, 1e-300)):
        assert r is not None and r.protocol == "paper" and r.alpha == alpha
        assert r.p_value == paper["p_value"] and r.delta_p == paper["delta_p"] and r.m == paper["m"]
        assert r.stolen == (paper["p_value"] < alpha)
    assert not strict.stolen and strict.verdict == "not stolen"
    membership_strict = v.under(alpha=v.p_value)  # p < alpha is strict
    assert membership_strict.p_value == v.p_value and not membership_strict.stolen
    holmes = v.under("holmes", alpha=0.5)
    assert holmes.m == v.evidence["holmes"]["m"] and holmes.delta_p == v.evidence["holmes"]["delta_p"]


def test_an_unknown_protocol_is_a_config_error(built, victim_logits):
    audit, _, _ = built
    v = verify_outputs(audit, victim_logits, "victim")
    with pytest.raises(ConfigError, match=r"unknown protocol 'nope'; choose one of"):
        v.under("nope")
    with pytest.raises(ConfigError, match=r"unknown protocol 'nope'"):
        verify_outputs(audit, victim_logits, "victim", protocol="nope")


def test_verify_model_sets_the_fingerprint_and_checks_the_class_count(built, victim_logits):
    audit, victim, _ = built
    v = verify_model(audit, victim)
    assert v.fingerprint == victim.fingerprint and v.suspect == "test:victim"
    assert v.to_dict() == {**verify_outputs(audit, victim_logits, "test:victim").to_dict(),
                           "fingerprint": victim.fingerprint}
    assert verify_model(audit, victim, name="renamed").suspect == "renamed"
    four = make_loaded(num_classes=4, seed=5)
    with pytest.raises(ClassCountMismatchError, match=r"has 4 classes, the victim 3") as info:
        verify_model(audit, four)
    assert (info.value.expected, info.value.found) == (3, 4)


def test_has_ds_and_the_protocols_that_need_it(built):
    audit, victim, _ = built
    assert has_ds(audit)
    assert not has_ds(replace(audit, loss_order=LossOrder(audit.loss_order.loss, np.zeros(0, np.int64))))
    # what a query budget leaves: members and controls, D_s only where it overlaps the members
    design = audit.membership
    queries = build_query_set(audit.private, audit.heldout, design.member_rows, design.control_rows, 1)
    assert not set(audit.loss_order.ds_rows) <= set(design.member_rows)
    thinned = replace(audit, queries=queries, memo={})
    assert not has_ds(thinned)
    logits = audit.engine.logits(victim, queries.images)
    v = verify_outputs(thinned, logits, "victim")
    assert set(v.evidence) == runnable(False, ds=False) == {"membership", "sequential"}
    assert v.delta_p is None and v.p_value < 1e-3
    with pytest.raises(ConfigError, match=r"'paper' protocol needs D_s among the queries"):
        verify_outputs(thinned, logits, "victim", protocol="paper")


def test_format_p():
    assert format_p(None) == "-"
    assert format_p(1.0) == "1.000"
    assert format_p(0.5) == "0.500"
    assert format_p(0.0123) == "0.012"
    assert format_p(0.001) == "0.001"
    assert format_p(0.000999) == "1.0e-03"
    assert format_p(3.14159e-7) == "3.1e-07"
    assert format_p(0.0) == "0.0e+00"


def _reading(p: float) -> Reading:
    return Reading("membership", p, None, 100, 0.01)


def test_headline_wording():
    stolen, innocent = _reading(1e-6), _reading(0.4)
    assert headline([], 0.01) == "No suspect has been verified yet."
    assert headline([], 0.01, failed=2) == "No suspect has been verified yet; 2 could not be verified."
    assert headline([stolen], 0.01) == "The suspect shows evidence of derivation from your model at alpha = 0.01."
    assert headline([innocent], 0.01) == ("The suspect shows no evidence of derivation from your model at "
                                          "alpha = 0.01.")
    assert headline([innocent, innocent, innocent], 0.05) == (
        "None of the 3 suspects shows evidence of derivation from your model at alpha = 0.05.")
    assert headline([stolen, innocent, innocent], 0.01) == (
        "1 of 3 suspects shows evidence of derivation from your model at alpha = 0.01.")
    assert headline([stolen, stolen, innocent], 0.001, failed=1) == (
        "2 of 3 suspects show evidence of derivation from your model at alpha = 0.001; 1 could not be verified.")


def test_reference_pairs_make_every_private_row_a_member_and_query(built):
    """An audit with reference_pairs: 2P references on halves, all of D as members and queries, the victim
    flagged, a model that never saw the data not flagged (the gain in power is measured by benchmarks/references.py
    on real victims, not on toy images)."""
    audit, victim, foundation = built
    config = replace(audit.config, reference_pairs=2)
    spec = replace(audit.spec, config=config)
    paired = build_audit(spec, victim, foundation, audit.private, audit.heldout, audit.engine)
    assert len(paired.shadows.references) == 4 and paired.shadows.reference is paired.shadows.references[0]
    assert paired.membership.member_rows.tolist() == list(range(200))
    assert len(paired.queries) == 400  # every private row (D_s among them) and every control
    assert paired.summary()["members"] == 200 and len(paired.summary()["reference_shadows"]) == 4
    assert "reference_pairs" in paired.summary()["config"] and "reference_pairs" not in audit.summary()["config"]
    v = verify_outputs(paired, paired.engine.logits(victim, paired.queries.images), "victim")
    assert v.evidence["membership"]["members"] == 200 and v.p_value < 1e-3
    innocent = verify_outputs(paired, paired.engine.logits(foundation, paired.queries.images), "foundation")
    assert innocent.p_value > 0.01


def test_held_out_data_that_repeats_private_images_is_refused_before_any_training(one_torch_thread, tmp_path):
    """Held-out images the victim trained on would be members counted as controls: three private images saved as PNG
    files under other names among the held-out folder are found by their pixels, and the audit stops before it trains
    anything, naming them."""
    from PIL import Image

    from forensics.data.images import load_image_folder
    from forensics.errors import DataSourceError

    private = overlapping_images(200, 0, "private")
    unseen = overlapping_images(150, 1, "heldout")
    folder = tmp_path / "heldout"
    for c in private.classes:
        (folder / c).mkdir(parents=True)
    for i in range(len(unseen)):
        Image.fromarray(unseen.images[i]).save(folder / unseen.classes[unseen.labels[i]] / f"u{i:03d}.png")
    for i in (7, 42, 199):
        Image.fromarray(private.images[i]).save(folder / private.classes[private.labels[i]] / f"copy-{i}.png")
    heldout = load_image_folder(folder, classes=private.classes)
    engine = Engine(ArtifactStore(tmp_path / "store"), device="cpu", cache_blocks=None)
    config = AuditConfig(gamma=0.2, lam=0.5, train=SHADOW, poison_train=SHADOW, meta=MetaConfig(epochs=2), seed=3)
    spec = AuditSpec(victim="test:victim", foundation="test:foundation", data="test:private", heldout=str(folder),
                     config=config)
    with pytest.raises(DataSourceError, match=r"shares 3 of its images with the private data .*'private/007', "
                                              r"'private/042', 'private/199'"):
        build_audit(spec, make_loaded(seed=0), make_loaded(seed=0), private, heldout, engine)
    assert set(engine.store.stats.computed) == {"pixel_hashes"}  # no loss order, no shadow
    # without the copies the same audit's checks pass (its hashes are reused from the store)
    clean = heldout.subset([i for i, p in enumerate(heldout.paths) if not p.name.startswith("copy-")])
    from forensics.audit.build import check_heldout_unseen

    check_heldout_unseen(engine.store, private, clean)
