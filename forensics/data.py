"""Image sets: image folders, timm transforms, the trigger, and safe zip extraction.

An :class:`ImageSet` is a list of labelled images with stable sample ids (a folder's relative file
paths, or ``split/NNNNN`` for in-memory arrays such as the demo's), so that rows line up across models and runs.
Transforms come from the model's timm data config; images are converted to RGB (grayscale becomes
3 channels) and resized to the model's input size.  A trigger, when given, is stamped on the
resized tensor before normalisation, so no crop can remove it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from .errors import ConfigError, DataSourceError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass
class ImageSet:
    """Labelled images with stable ids: in memory (``images``, decoded arrays of one shape), on disk (``paths``)
    or as encoded files in memory (``blobs``: PNG/JPEG bytes, as Hugging Face datasets and parquet files keep
    them; decoded when used)."""

    name: str
    labels: np.ndarray
    ids: np.ndarray
    classes: list[str]
    images: np.ndarray | None = None
    paths: list[Path] | None = None
    blobs: list[bytes] | None = None
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.ids = np.asarray(self.ids).astype(str)
        n = len(self.labels)
        held = [x for x in (self.images, self.paths, self.blobs) if x is not None]
        if len(held) != 1:
            raise ValueError("an ImageSet holds exactly one of images, paths or blobs")
        if len(self.ids) != n or len(held[0]) != n:
            raise ValueError("images, labels and ids must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the image bytes, labels, ids and class names."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update("\n".join(self.classes).encode())
            h.update(self.labels.tobytes())
            h.update("\n".join(self.ids.tolist()).encode())
            if self.images is not None:
                h.update(np.ascontiguousarray(self.images).tobytes())
            elif self.blobs is not None:
                for b in self.blobs:
                    h.update(hashlib.sha256(b).digest())
            else:
                for p in self.paths:
                    h.update(Path(p).read_bytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def pil(self, i: int):
        from PIL import Image, UnidentifiedImageError

        if self.images is not None:
            return Image.fromarray(self.images[i]).convert("RGB")
        if self.blobs is not None:
            import io

            try:
                with Image.open(io.BytesIO(self.blobs[i])) as im:
                    return im.convert("RGB")
            except (OSError, UnidentifiedImageError) as e:
                raise DataSourceError(f"cannot read image {str(self.ids[i])!r} of {self.name}: {e}; remove or "
                                      "replace it in the dataset") from e
        try:
            with Image.open(self.paths[i]) as im:
                return im.convert("RGB")
        except (OSError, UnidentifiedImageError) as e:
            raise DataSourceError(f"cannot read image {self.paths[i]}: {e}; remove or replace the file") from e

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None) -> "ImageSet":
        index = np.asarray(index, dtype=np.int64)
        return ImageSet(
            name=name or self.name,
            labels=self.labels[index],
            ids=self.ids[index],
            classes=list(self.classes),
            images=None if self.images is None else self.images[index],
            paths=None if self.paths is None else [self.paths[i] for i in index],
            blobs=None if self.blobs is None else [self.blobs[i] for i in index],
        )

    def summary(self) -> dict[str, Any]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {"name": self.name, "size": len(self), "classes": self.classes,
                "per_class": counts.tolist(), "fingerprint": self.fingerprint}


def synthetic_images(n: int, shape: tuple[int, ...], classes: list[str], seed: int = 0) -> ImageSet:
    """``n`` synthetic query images for data-free distillation: random low-frequency patterns (uniform noise on a
    4x4 to 8x8 grid, bilinearly upsampled to ``shape`` = (H, W) or (H, W, C)) with random contrast and offset -
    images of no class, answered by the victim.  Labels are 0 (unused: a student learns the victim's answers)."""
    rng = np.random.default_rng([seed, 77])
    h, w = shape[:2]
    out = np.empty((n,) + tuple(shape), np.uint8)
    for i in range(n):
        g = int(rng.integers(4, 9))
        grid = rng.uniform(0, 1, (1, shape[2] if len(shape) == 3 else 1, g, g)).astype(np.float32)
        up = torch.nn.functional.interpolate(torch.from_numpy(grid), size=(h, w), mode="bilinear",
                                             align_corners=False)[0].numpy()
        lo, hi = np.sort(rng.uniform(0, 1, 2))
        img = np.clip(lo + (hi - lo + 0.2) * up, 0, 1)
        img = np.moveaxis(img, 0, -1) if len(shape) == 3 else img[0]
        out[i] = np.rint(img * 255).astype(np.uint8)
    return ImageSet("synthetic", np.zeros(n, np.int64), np.array([f"synthetic/{i:05d}" for i in range(n)]),
                    list(classes), images=out)


def concat(sets: Sequence[ImageSet], name: str) -> ImageSet:
    if not sets:
        raise ValueError("nothing to concatenate")
    if any(s.classes != sets[0].classes for s in sets):
        raise DataSourceError("the image sets have different class lists")
    if all(s.images is not None for s in sets) and len({s.images.shape[1:] for s in sets}) == 1:
        return ImageSet(name, np.concatenate([s.labels for s in sets]), np.concatenate([s.ids for s in sets]),
                        list(sets[0].classes), images=np.concatenate([s.images for s in sets]))
    if all(s.blobs is not None for s in sets):
        return ImageSet(name, np.concatenate([s.labels for s in sets]), np.concatenate([s.ids for s in sets]),
                        list(sets[0].classes), blobs=[b for s in sets for b in s.blobs])
    paths = []
    for s in sets:
        if s.paths is None:
            raise DataSourceError("cannot mix in-memory and on-disk image sets of different sizes")
        paths.extend(s.paths)
    return ImageSet(name, np.concatenate([s.labels for s in sets]), np.concatenate([s.ids for s in sets]),
                    list(sets[0].classes), paths=paths)


def load_image_folder(path: str | Path, *, classes: Sequence[str] | None = None, name: str | None = None) -> ImageSet:
    """One subfolder per class (sorted by name), images inside (any depth)."""
    root = Path(path).expanduser()
    if not root.exists():
        raise DataSourceError(f"data folder {str(root)!r} does not exist; give a folder with one subfolder per class")
    if not root.is_dir():
        raise DataSourceError(f"{str(root)!r} is a file; give a folder with one subfolder per class")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise DataSourceError(f"data folder {str(root)!r} has no class subfolders; put each class's images "
                              "in a subfolder named after the class")
    if classes is not None:
        classes = list(classes)
        extra = sorted(set(found) - set(classes))
        if extra:
            raise DataSourceError(f"{root}: class folders {extra} are not among the victim's classes {classes}")
    else:
        classes = found
    paths, labels, ids = [], [], []
    for c, cname in enumerate(classes):
        folder = root / cname
        if not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(p)
                labels.append(c)
                ids.append(p.relative_to(root).as_posix())
    if not paths:
        raise DataSourceError(f"data folder {str(root)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return ImageSet(name or root.name, np.array(labels), np.array(ids), list(classes), paths=paths)


# --------------------------------------------------------------------------------------------
# transforms and batches


@dataclass(frozen=True)
class Trigger:
    """A BadNets-style square patch stamped after resizing, ``size`` a fraction of the side."""

    size: float = 0.125
    value: float = 1.0
    position: str = "bottom-right"

    def __post_init__(self) -> None:
        if not 0 < self.size <= 0.5:
            raise ConfigError(f"The 'size' parameter of Trigger must be in (0, 0.5]. Got {self.size} instead.")
        if not 0.0 <= self.value <= 1.0:
            raise ConfigError(f"The 'value' parameter of Trigger must be in [0, 1]. Got {self.value} instead.")
        if self.position not in ("bottom-right", "top-left", "bottom-left", "top-right"):
            raise ConfigError(f"unknown trigger position {self.position!r}; use bottom-right, top-left, "
                              "bottom-left or top-right")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Stamp the patch on (..., C, H, W) tensors with values in [0, 1]."""
        h, w = x.shape[-2:]
        s = max(1, int(round(self.size * min(h, w))))
        x = x.clone()
        rows = slice(h - s, h) if "bottom" in self.position else slice(0, s)
        cols = slice(w - s, w) if "right" in self.position else slice(0, s)
        x[..., rows, cols] = self.value
        return x

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "value": self.value, "position": self.position}


class EvalTransform:
    """timm's eval transform for a data config, split into (geometry -> [0,1] tensor) and normalise."""

    def __init__(self, data_config: dict[str, Any]):
        import timm.data
        from torchvision import transforms as T

        cfg = {k: data_config[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
               if k in data_config}
        full = timm.data.create_transform(**cfg, is_training=False)
        steps = list(full.transforms)
        if not isinstance(steps[-1], T.Normalize):
            raise ConfigError("unexpected timm eval transform (no final Normalize)")
        self.geometry = T.Compose(steps[:-1])
        self.mean = torch.tensor(cfg["mean"]).view(3, 1, 1)
        self.std = torch.tensor(cfg["std"]).view(3, 1, 1)
        self.key = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}

    def __call__(self, img, trigger: Trigger | None = None) -> torch.Tensor:
        x = self.geometry(img)
        if trigger is not None:
            x = trigger.apply(x)
        return (x - self.mean) / self.std


class TransformedImages(torch.utils.data.Dataset):
    """(tensor, row) pairs; rows listed in ``triggered`` get the trigger."""

    def __init__(self, images: ImageSet, transform: EvalTransform, trigger: Trigger | None = None,
                 triggered: np.ndarray | None = None):
        self.images, self.transform, self.trigger = images, transform, trigger
        self.triggered = np.zeros(len(images), bool) if triggered is None else np.asarray(triggered, bool)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        trig = self.trigger if self.triggered[i] else None
        return self.transform(self.images.pil(i), trig), i


class AugmentedImages(TransformedImages):
    """(tensor, row) pairs of random views: a resized crop of 60-100 % of the area (aspect 3/4-4/3) and a
    horizontal flip with probability 1/2, drawn from (seed, epoch, row), so a run is reproducible whatever
    the batch order.  Set :attr:`epoch` before each epoch.  The trigger, if any, is stamped after."""

    SCALE = (0.6, 1.0)
    RATIO = (3 / 4, 4 / 3)

    def __init__(self, images: ImageSet, transform: EvalTransform, seed: int, trigger: Trigger | None = None,
                 triggered: np.ndarray | None = None):
        super().__init__(images, transform, trigger, triggered)
        self.seed, self.epoch = seed, 0

    def __getitem__(self, i: int):
        import math

        from torchvision.transforms import functional as TF

        g = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 10_007 + int(i))
        x = self.transform.geometry(self.images.pil(i))
        h, w = x.shape[-2:]
        u = torch.rand(4, generator=g).tolist()
        area = h * w * (self.SCALE[0] + (self.SCALE[1] - self.SCALE[0]) * u[0])
        ratio = math.exp(math.log(self.RATIO[0]) + (math.log(self.RATIO[1]) - math.log(self.RATIO[0])) * u[1])
        ch = max(1, min(h, int(round(math.sqrt(area / ratio)))))
        cw = max(1, min(w, int(round(math.sqrt(area * ratio)))))
        top, left = int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1))
        x = TF.resized_crop(x, min(top, h - ch), min(left, w - cw), ch, cw, [h, w], antialias=True)
        if torch.rand(1, generator=g).item() < 0.5:
            x = TF.hflip(x)
        if self.trigger is not None and self.triggered[i]:
            x = self.trigger.apply(x)
        return (x - self.transform.mean) / self.transform.std, i


def iter_batches(images: ImageSet, data_config: dict[str, Any], batch_size: int = 256, *,
                 trigger: Trigger | None = None, triggered: np.ndarray | None = None,
                 num_workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of normalised eval-transformed images, in row order."""
    if trigger is not None and triggered is None:
        triggered = np.ones(len(images), bool)
    ds = TransformedImages(images, EvalTransform(data_config), trigger, triggered)
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    yield from loader


def extract_zip(data: bytes, dest: str | Path, *, max_bytes: int = 2 * 1024 ** 3, max_files: int = 200_000) -> Path:
    """Extract an uploaded zip of an image folder safely into ``dest`` and return the data root.

    Refuses absolute paths, ``..`` components, links, and archives that would unpack to more than
    ``max_bytes`` or ``max_files`` (zip bombs).  If the archive holds a single top folder that
    contains the class folders, that folder is returned.
    """
    import io
    import stat
    import zipfile

    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise DataSourceError("the upload is not a zip archive; zip the folder with one subfolder per class") from e
    with zf:
        infos = zf.infolist()
        if len(infos) > max_files:
            raise DataSourceError(f"the zip holds {len(infos)} entries (at most {max_files}); split the data")
        total = sum(i.file_size for i in infos)
        if total > max_bytes:
            raise DataSourceError(f"the zip unpacks to {total / 1e9:.1f} GB (at most {max_bytes / 1e9:.1f} GB); "
                                  "give a folder path on the server instead")
        for info in infos:
            name = info.filename
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataSourceError(f"the zip contains an unsafe path {name!r} (absolute or with '..'); "
                                      "nothing was extracted. Re-create the zip from the data folder itself")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataSourceError(f"the zip contains a link {name!r}; nothing was extracted")
        dest.mkdir(parents=True, exist_ok=True)
        for info in infos:
            if info.is_dir() or Path(info.filename).name.startswith(".") or "__MACOSX" in info.filename:
                continue
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                out.write(src.read())
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if p.is_dir()]
        if inner and not any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in entries[0].iterdir()):
            return entries[0]
    return dest
