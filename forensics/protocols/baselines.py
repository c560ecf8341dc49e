"""Peer methods a user would otherwise pick, registered as *baselines* of the protocol registry, so the
benchmark runs them on exactly the same suspects and answers as the audit's own protocols.

* ``fingerprint`` - label agreement with the victim on the held-out controls (unseen data), thresholded
  against the audit's innocent references: the reference shadow R and the benign shadow B, fine-tuned from
  the same foundation on the victim's own data but never from the victim's weights.  One-sided exact McNemar
  test of "the suspect agrees with the victim more often than the most similar reference does".
* ``akh`` - agreement on the victim's own mistakes (the AKH idea of QuRD, AAAI 2025): on the controls the
  victim gets wrong, how often does the suspect give the victim's *wrong* label, against the references
  (same McNemar test).  Labels are enough, and only those controls need asking (the owner knows them).
* ``dataset_inference`` - Dataset Inference (Maini et al., ICLR 2021), black-box "blind walk" variant: for
  each sample, the number of steps along random noise directions until the suspect's label changes (a
  distance to the decision boundary); a logistic "confidence regressor" fitted on the victim's own distances
  (its training samples against unseen samples) scores the suspect's; one-sided Welch t-test that the
  victim's training samples score higher.  Its walks are queries of their own (``extra_queries``):
  ``DI_SAMPLES`` x ``DI_DIRECTIONS`` x ``DI_STEPS`` images.

None of them is an audit's verdict; their p-values are not claimed to be calibrated (the benchmark measures
their false-positive rates on innocent models).
"""
from __future__ import annotations

import numpy as np

from ..data.images import ImageSet
from ..method.queries import HELDOUT
from ..models import LoadedModel
from .registry import AuditView, Evidence, VerdictProtocol, heldout_of, register_protocol

# Dataset Inference's walks: samples per side (members / controls) for the suspect's test and as many again
# for the victim's regressor, directions per sample, steps per direction, noise scale per step ([0, 1] pixels)
DI_SAMPLES = 100
DI_DIRECTIONS = 6
DI_STEPS = 8
DI_STEP_SIZE = 0.05


def _labels(out: np.ndarray) -> np.ndarray:
    return out if out.ndim == 1 else out.argmax(1)


def _memo(audit: AuditView, key: str, make):
    if key not in audit.memo:
        audit.memo[key] = make()
    return audit.memo[key]


def _victim_and_references(audit: AuditView) -> tuple[np.ndarray, list[tuple[str, np.ndarray]]]:
    """The victim's and the innocent references' labels on the whole query set (stored logits)."""
    def make():
        engine, q = audit.engine, audit.queries.images
        refs = [("reference shadow", audit.shadows.reference), ("benign shadow", audit.shadows.benign)]
        return (_labels(engine.logits(audit.victim, q)),
                [(name, _labels(engine.logits(m, q))) for name, m in refs if m is not None])
    return _memo(audit, "victim_and_references", make)


def mcnemar_greater(hit_suspect: np.ndarray, hit_reference: np.ndarray) -> float:
    """One-sided exact McNemar test that the suspect hits more often than the reference on the same queries."""
    b = int(np.sum(hit_suspect & ~hit_reference))
    c = int(np.sum(~hit_suspect & hit_reference))
    if b + c == 0:
        return 1.0
    from scipy import stats

    return float(stats.binom.sf(b - 1, b + c, 0.5))


def _against_references(hit: np.ndarray, refs: list[tuple[str, np.ndarray]]) -> tuple[float, str, float]:
    """(p against the reference with the highest hit rate, its name, its hit rate)."""
    name, ref_hit = max(refs, key=lambda r: r[1].mean())
    return mcnemar_greater(hit, ref_hit), name, float(ref_hit.mean())


def _control_positions(audit: AuditView) -> np.ndarray:
    return audit.queries.positions(HELDOUT, audit.membership.control_rows)


def victim_mistakes(audit: AuditView) -> np.ndarray:
    """Indices into the audit's control rows of the controls the victim gets wrong."""
    victim, _ = _victim_and_references(audit)
    pos = _control_positions(audit)
    return np.flatnonzero(victim[pos] != heldout_of(audit).labels[audit.membership.control_rows])


def _fingerprint(audit: AuditView, out: np.ndarray, label_only: bool,
                 extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    pos = _control_positions(audit)
    victim, refs = _victim_and_references(audit)
    agree = _labels(out)[pos] == victim[pos]
    p, ref_name, ref_rate = _against_references(agree, [(n, r[pos] == victim[pos]) for n, r in refs])
    return {"p_value": p, "agreement": float(agree.mean()), "reference": ref_name, "reference_agreement": ref_rate,
            "m": int(len(pos))}, {}


def _akh(audit: AuditView, out: np.ndarray, label_only: bool,
         extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    pos = _control_positions(audit)
    victim, refs = _victim_and_references(audit)
    truth = heldout_of(audit).labels[audit.membership.control_rows]
    wrong = victim[pos] != truth
    pw, vw = pos[wrong], victim[pos][wrong]
    same = _labels(out)[pw] == vw
    if len(pw) == 0:
        return {"p_value": 1.0, "match_rate": 0.0, "reference": "", "reference_match_rate": 0.0, "m": 0}, {}
    p, ref_name, ref_rate = _against_references(same, [(n, r[pw] == vw) for n, r in refs])
    return {"p_value": p, "match_rate": float(same.mean()), "reference": ref_name, "reference_match_rate": ref_rate,
            "m": int(len(pw))}, {}


# -- Dataset Inference ----------------------------------------------------------------------------------------
def _di_rows(audit: AuditView) -> dict[str, np.ndarray]:
    """Members and controls for the regressor (victim) and for the test (suspect), disjoint, seeded."""
    rng = np.random.default_rng([audit.config.seed, 2021])
    m = rng.permutation(audit.membership.member_rows)
    c = rng.permutation(audit.membership.control_rows)
    n = int(min(DI_SAMPLES, len(m) // 2, len(c) // 2))
    return {"fit_members": m[:n], "fit_controls": c[:n], "test_members": m[n:2 * n], "test_controls": c[n:2 * n]}


def _pixels(images: ImageSet, rows: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """uint8 (n, H, W[, C]) pixels of some rows; on-disk images resized to ``size`` so they stack."""
    if images.images is not None:
        return images.images[rows]
    from PIL import Image

    arrays = [np.asarray(images.pil(int(r)).resize(size, Image.Resampling.BILINEAR)) for r in rows]
    return np.stack(arrays)


def di_walk_images(audit: AuditView) -> ImageSet:
    """The walks: for every DI sample (fit members, fit controls, test members, test controls, in this order),
    ``DI_DIRECTIONS`` random uniform noise directions, each at steps 1..``DI_STEPS`` of ``DI_STEP_SIZE``."""
    def make():
        rows = _di_rows(audit)
        size = tuple(audit.victim.data_config["input_size"][-2:])[::-1]
        parts, labels = [], []
        for key in ("fit_members", "fit_controls", "test_members", "test_controls"):
            data = audit.private if key.endswith("members") else heldout_of(audit)
            parts.append(_pixels(data, rows[key], size))
            labels.append(data.labels[rows[key]])
        x = np.concatenate(parts).astype(np.float32) / 255.0
        rng = np.random.default_rng([audit.config.seed, 2021, 1])
        noise = rng.uniform(-1, 1, size=(len(x), DI_DIRECTIONS, *x.shape[1:])).astype(np.float32)
        steps = DI_STEP_SIZE * np.arange(1, DI_STEPS + 1, dtype=np.float32)
        steps = steps.reshape((1, 1, DI_STEPS) + (1,) * (x.ndim - 1))
        walked = x[:, None, None] + steps * noise[:, :, None]
        walked = np.clip(np.rint(walked * 255), 0, 255).astype(np.uint8)
        n = walked.shape[0] * DI_DIRECTIONS * DI_STEPS
        walked = walked.reshape((n, *x.shape[1:]))
        y = np.repeat(np.concatenate(labels), DI_DIRECTIONS * DI_STEPS)
        return ImageSet("dataset-inference walks", y, np.array([f"di:{i}" for i in range(n)]),
                        list(audit.private.classes), images=walked)
    return _memo(audit, "di_walks", make)


def di_distances(answers: np.ndarray, true_labels: np.ndarray) -> np.ndarray:
    """(samples, directions) steps until the label leaves the true class (DI_STEPS + 1 if it never does),
    sorted per sample so the directions are exchangeable."""
    lab = _labels(answers).reshape(-1, DI_DIRECTIONS, DI_STEPS)
    off = lab != true_labels[:, None, None]
    first = np.where(off.any(2), off.argmax(2) + 1, DI_STEPS + 1)
    return np.sort(first, axis=1).astype(np.float64)


def _di_part(audit: AuditView, part: str) -> ImageSet:
    """The walks of the regressor's samples (``fit``: the victim answers them) or of the test's (``test``: the
    suspect answers them)."""
    n = len(_di_rows(audit)["fit_members"])
    per = DI_DIRECTIONS * DI_STEPS
    start = 0 if part == "fit" else 2 * n * per
    return _memo(audit, f"di_{part}", lambda: di_walk_images(audit).subset(np.arange(start, start + 2 * n * per),
                                                                            f"dataset-inference {part} walks"))


def _di_regressor(audit: AuditView):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def make():
        n = len(_di_rows(audit)["fit_members"])
        walks = _di_part(audit, "fit")
        victim = audit.engine.logits(audit.victim, walks)
        d = di_distances(victim, walks.labels[::DI_DIRECTIONS * DI_STEPS])
        reg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        reg.fit(d, np.r_[np.ones(n), np.zeros(n)])
        return reg
    return _memo(audit, "di_regressor", make)


def _dataset_inference(audit: AuditView, out: np.ndarray, label_only: bool,
                       extra: np.ndarray | None = None) -> tuple[Evidence, dict[str, list]]:
    if extra is None:
        raise ValueError("dataset_inference needs the suspect's answers to its walks")
    n = len(_di_rows(audit)["fit_members"])
    per = DI_DIRECTIONS * DI_STEPS
    walks = _di_part(audit, "test")
    d = di_distances(extra, walks.labels[::per])
    score = _di_regressor(audit).predict_proba(d)[:, 1]
    s_m, s_c = score[:n], score[n:]
    from scipy import stats

    r = stats.ttest_ind(s_m, s_c, equal_var=False, alternative="greater")
    p = 1.0 if np.isnan(r.pvalue) else float(r.pvalue)
    return {"p_value": p, "score_members": float(s_m.mean()), "score_controls": float(s_c.mean()),
            "mean_distance_members": float(d[:n].mean()), "mean_distance_controls": float(d[n:].mean()),
            "m": int(2 * n), "queries": int(2 * n * per)}, {}


FINGERPRINT = register_protocol(VerdictProtocol(
    "fingerprint", "Label-agreement fingerprint (baseline)",
    "top-1 agreement with the victim on the held-out controls, against the most similar innocent reference "
    "(exact McNemar test)",
    _fingerprint, needs_heldout=True, needs_logits=False, calibrated=False, baseline=True, budget_on="controls"))
AKH = register_protocol(VerdictProtocol(
    "akh", "AKH: agreement on the victim's mistakes (baseline)",
    "on the controls the victim gets wrong, how often the suspect repeats the victim's wrong label, against the "
    "innocent references (exact McNemar test; QuRD, AAAI 2025)",
    _akh, needs_heldout=True, needs_logits=False, calibrated=False, baseline=True, budget_on="mistakes"))
DATASET_INFERENCE = register_protocol(VerdictProtocol(
    "dataset_inference", "Dataset Inference, blind walk (baseline)",
    "steps to the decision boundary along random noise, scored by a regressor fitted on the victim, Welch t-test "
    "of the victim's training samples against unseen ones (Maini et al., ICLR 2021)",
    _dataset_inference, needs_heldout=True, needs_logits=False, calibrated=False, baseline=True,
    extra_queries=lambda audit: _di_part(audit, "test")))


def extra_answers(audit: AuditView, model: LoadedModel, protocols: list[VerdictProtocol]) -> dict[str, np.ndarray]:
    """A model's logits on the extra queries of each protocol that has some (stored)."""
    return {p.name: audit.engine.logits(model, p.extra_queries(audit)) for p in protocols
            if p.extra_queries is not None}

