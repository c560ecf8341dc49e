"""The D_s gallery: the victim's special samples ordered by a suspect's loss or the meta-classifier's P(stolen), with
its one-sentence takeaway, and triggered examples of the poisoned shadow's training images."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audit.opened import Audit
from ..audit.verdict import Verdict
from ..method.meta import STOLEN
from ..method.metrics import per_sample_loss
from .figures import output_differences


@dataclass(frozen=True)
class GalleryItem:
    row: int            # row in the private data
    label: str          # its class
    value: float        # what the gallery shows and sorts by
    caption: str


GALLERY_METRICS = ("suspect's loss", "meta-classifier P(stolen)")


GALLERY_ORDERS = ("highest first", "lowest first", "victim's loss order")


def ds_losses(audit: Audit, verdict: Verdict) -> dict[str, np.ndarray]:
    """Per D_s image (in D_s order): the suspect's, the victim's and the benign shadow's loss [nats]."""
    rows = audit.loss_order.ds_rows
    y = audit.private.labels[rows]
    return {"suspect": per_sample_loss(np.asarray(verdict.per_sample["ds_logits"], np.float64), y),
            "victim": np.asarray(audit.loss_order.loss[rows], np.float64),
            "benign shadow": per_sample_loss(audit.meta.logits_ds["benign"], y)}


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def loss_text(x: float) -> str:
    """A loss for people: 2 significant digits, small ones as 1.5×10⁻⁴ (no hyphen for a caption to break at)."""
    if x == 0 or x >= 0.01:
        return f"{x:.2g}"
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}"


def ds_p_stolen(audit: Audit) -> dict[str, np.ndarray]:
    """The meta-classifier's P(stolen) on every D_s image for the victim and the benign shadow (the references a
    suspect's ``per_sample["ds_p_stolen"]`` compares with)."""
    return {name: audit.meta.classifier.predict_proba(o)[:, STOLEN]
            for name, o in output_differences(audit, ()).items()}


def gallery(audit: Audit, verdict: Verdict, metric: str = GALLERY_METRICS[0], order: str = GALLERY_ORDERS[0],
            n: int = 24) -> list[GalleryItem]:
    """The D_s images for one suspect (that answered with logits), with a per-image value: the suspect's loss
    on the image (its own answer against the true label, beside the victim's), or the meta-classifier's
    P(stolen) on the image's output difference."""
    rows = audit.loss_order.ds_rows
    if metric == GALLERY_METRICS[0]:
        loss = ds_losses(audit, verdict)
        vals = loss["suspect"]
        caps = [f"{loss_text(s)} (victim {loss_text(w)})" for s, w in zip(vals, loss["victim"], strict=True)]
    elif metric == GALLERY_METRICS[1]:
        vals = np.asarray(verdict.per_sample["ds_p_stolen"], np.float64)
        caps = [f"P(stolen) {p:.3f}" for p in vals]
    else:
        raise ValueError(f"unknown gallery metric {metric!r}; choose one of {GALLERY_METRICS}")
    if order == GALLERY_ORDERS[0]:
        idx = np.argsort(-vals, kind="stable")
    elif order == GALLERY_ORDERS[1]:
        idx = np.argsort(vals, kind="stable")
    else:
        idx = np.arange(len(vals))  # D_s is already the victim's lowest-loss samples, lowest first
    out = []
    for i in idx[:n]:
        row = int(rows[i])
        label = audit.private.classes[audit.private.labels[row]]
        out.append(GalleryItem(row, label, float(vals[i]), f"{label} · {caps[i]}"))
    return out


def gallery_takeaway(audit: Audit, verdict: Verdict, verdicts: Sequence[Verdict] = ()) -> str:
    """One sentence on how the suspect fits D_s, beside the victim and the benign shadow (and the suspects
    without evidence, from ``verdicts``)."""
    loss = ds_losses(audit, verdict)
    med = {k: float(np.median(x)) for k, x in loss.items()}
    n = len(loss["suspect"])
    s = (f"On these {n} D_s images, {verdict.suspect} has a median loss of {loss_text(med['suspect'])} nats, against "
         f"{loss_text(med['victim'])} for the victim and {loss_text(med['benign shadow'])} for the benign shadow, "
         "which never trained on them")
    clear = [v for v in verdicts if v is not verdict and not v.stolen and v.per_sample.get("ds_logits")]
    if clear:
        meds = [float(np.median(ds_losses(audit, v)["suspect"])) for v in clear]
        lo, hi = min(meds), max(meds)
        if hi < med["benign shadow"] / 10:
            rng = loss_text(lo) if loss_text(lo) == loss_text(hi) else f"{loss_text(lo)} to {loss_text(hi)}"
            s += (f"; suspects without evidence fit them about as well ({rng}), so D_s shows what the victim "
                  "learned best, not who copied it")
    return s + "."


def trigger_examples(audit: Audit, n: int = 6) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(clean, triggered, caption) images at the model's input size, as uint8 HxWx3 arrays."""
    from ..data.transforms import EvalTransform

    t = EvalTransform(audit.victim.data_config)
    out = []
    for row in audit.loss_order.ds_rows[:n]:
        img = audit.private.pil(int(row))
        clean = t.geometry(img)
        trig = audit.config.trigger.apply(clean)
        to8 = lambda x: (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)  # noqa: E731
        cls = audit.private.classes[audit.private.labels[row]]
        tgt = audit.private.classes[audit.config.target_class]
        out.append((to8(clean), to8(trig), f"{cls} → relabelled {tgt}"))
    return out
