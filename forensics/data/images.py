"""Image sets: labelled images with stable sample ids (a folder's relative file paths, or ``split/NNNNN`` for
in-memory arrays such as the demo's), so that rows line up across models and runs; image folders; synthetic query
images for data-free distillation."""
from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataSourceError

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
    # the sets this one was cut from by :meth:`subset` and :func:`concat` (the first of each chain, held weakly),
    # and for each row, which of them (an index into the first) and its row there
    _origin: tuple[tuple[weakref.ref[ImageSet], ...], np.ndarray, np.ndarray] | None = field(
        default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.ids = np.asarray(self.ids).astype(str)
        n = len(self.labels)
        held = [x for x in (self.images, self.paths, self.blobs) if x is not None]
        if len(held) != 1:
            raise ValueError("an ImageSet holds exactly one of images, paths or blobs")
        if len(self.ids) != n or len(held[0]) != n:
            raise ValueError("images, labels and ids must have the same length")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (Ray tasks, DataLoader workers) without the weak link to its origin, which cannot travel."""
        return {**self.__dict__, "_origin": None}

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
                for p in self._files():
                    h.update(Path(p).read_bytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    @property
    def fingerprinted(self) -> bool:
        """Whether :attr:`fingerprint` is known without hashing (computed before, or given)."""
        return self._fingerprint is not None

    def origin(self) -> tuple[ImageSet, np.ndarray] | None:
        """The set this one was cut from by :meth:`subset` (the first of a chain of subsets) and the rows of it
        that this one holds, in order; None for a set that was not cut from one other, or whose origin is gone."""
        parts = self.origins()
        return None if parts is None or len(parts) != 1 else (parts[0][0], parts[0][2])

    def origins(self) -> list[tuple[ImageSet, np.ndarray, np.ndarray]] | None:
        """Where this set's rows come from, through :meth:`subset` and :func:`concat`: (a first set, the positions
        in this one, the rows of that set), one per first set; None for a set cut from none, or when one is gone."""
        if self._origin is None:
            return None
        refs, part, rows = self._origin
        out = []
        for i, ref in enumerate(refs):
            root = ref()
            if root is None:
                return None
            at = np.flatnonzero(part == i)
            if len(at):
                out.append((root, at, rows[at]))
        return out

    def _rows_of_origins(self) -> tuple[tuple[weakref.ref[ImageSet], ...], np.ndarray, np.ndarray]:
        """:attr:`_origin`, with a set cut from none its own origin."""
        if self._origin is not None:
            return self._origin
        return (weakref.ref(self),), np.zeros(len(self), np.int64), np.arange(len(self), dtype=np.int64)

    def pil(self, i: int):
        """Image ``i`` as an RGB PIL image; a file that is not an image, or one of more than :data:`MAX_PIXELS`
        pixels (checked from its header, before it is decoded), is a :class:`DataSourceError` that names it."""
        from PIL import Image

        if self.images is not None:
            return Image.fromarray(self.images[i]).convert("RGB")
        if self.blobs is not None:
            import io

            return _decoded(io.BytesIO(self.blobs[i]), f"image {str(self.ids[i])!r} of {self.name}",
                            "remove or replace it in the dataset")
        path = self._files()[i]
        return _decoded(path, f"image {path}", "remove or replace the file")

    def _files(self) -> list[Path]:
        """The image files of a set kept on disk (neither ``images`` nor ``blobs``: ``__post_init__`` holds one)."""
        if self.paths is None:
            raise ValueError(f"{self.name} holds its images in memory, not as files")
        return self.paths

    def subset(self, index: Sequence[int] | np.ndarray, name: str | None = None) -> ImageSet:
        index = np.asarray(index, dtype=np.int64)
        refs, part, rows = self._rows_of_origins()
        origin = (refs, part[index], rows[index])
        return ImageSet(
            name=name or self.name,
            labels=self.labels[index],
            ids=self.ids[index],
            classes=list(self.classes),
            images=None if self.images is None else self.images[index],
            paths=None if self.paths is None else [self.paths[i] for i in index],
            blobs=None if self.blobs is None else [self.blobs[i] for i in index],
            _origin=origin,
        )

    def summary(self) -> dict[str, Any]:
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {"name": self.name, "size": len(self), "classes": self.classes,
                "per_class": counts.tolist(), "fingerprint": self.fingerprint}


def pixel_hashes(images: ImageSet) -> np.ndarray:
    """SHA-256 of each image's decoded RGB pixels, (N, 32) bytes: a PNG file, a lossless copy of it under another name
    and the same image in memory are one image, whatever their names or ids."""
    out = np.empty((len(images), 32), np.uint8)
    for i in range(len(images)):
        out[i] = np.frombuffer(hashlib.sha256(np.ascontiguousarray(np.asarray(images.pil(i))).tobytes()).digest(),
                               np.uint8)
    return out


def shared_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows of ``a`` (pixel hashes, :func:`pixel_hashes`) whose image is in ``b`` too."""
    kb = {bytes(h) for h in b}
    return np.flatnonzero([bytes(h) in kb for h in a]).astype(np.int64)


def synthetic_images(n: int, shape: tuple[int, ...], classes: list[str], seed: int = 0) -> ImageSet:
    """``n`` synthetic query images for data-free distillation: random low-frequency patterns (uniform noise on a
    4x4 to 8x8 grid, bilinearly upsampled to ``shape`` = (H, W) or (H, W, C)) with random contrast and offset -
    images of no class, answered by the victim.  Labels are 0 (unused: a student learns the victim's answers)."""
    rng = np.random.default_rng([seed, 77])
    h, w = shape[:2]
    out = np.empty((n, *tuple(shape)), np.uint8)
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


def _concat_origins(sets: Sequence[ImageSet]) -> tuple[tuple[weakref.ref[ImageSet], ...], np.ndarray, np.ndarray]:
    """The first sets of ``sets``' rows, one after the other (see :meth:`ImageSet.origins`)."""
    refs: list[weakref.ref[ImageSet]] = []
    parts, rows = [], []
    for s in sets:
        r, part, row = s._rows_of_origins()
        at = []
        for ref in r:
            same = next((j for j, known in enumerate(refs) if known() is not None and known() is ref()), None)
            if same is None:
                refs.append(ref)
                same = len(refs) - 1
            at.append(same)
        parts.append(np.asarray(at, np.int64)[part])
        rows.append(row)
    return tuple(refs), np.concatenate(parts), np.concatenate(rows)


def concat(sets: Sequence[ImageSet], name: str) -> ImageSet:
    if not sets:
        raise ValueError("nothing to concatenate")
    if any(s.classes != sets[0].classes for s in sets):
        raise DataSourceError("the image sets have different class lists")
    origin = _concat_origins(sets)
    arrays = [s.images for s in sets if s.images is not None]
    if len(arrays) == len(sets) and len({a.shape[1:] for a in arrays}) == 1:
        return ImageSet(name, np.concatenate([s.labels for s in sets]), np.concatenate([s.ids for s in sets]),
                        list(sets[0].classes), images=np.concatenate(arrays), _origin=origin)
    blobs = [s.blobs for s in sets if s.blobs is not None]
    if len(blobs) == len(sets):
        return ImageSet(name, np.concatenate([s.labels for s in sets]), np.concatenate([s.ids for s in sets]),
                        list(sets[0].classes), blobs=[b for one in blobs for b in one], _origin=origin)
    paths = []
    for s in sets:
        if s.paths is None:
            raise DataSourceError("cannot mix in-memory and on-disk image sets of different sizes")
        paths.extend(s.paths)
    return ImageSet(name, np.concatenate([s.labels for s in sets]), np.concatenate([s.ids for s in sets]),
                    list(sets[0].classes), paths=paths, _origin=origin)


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


#: the most pixels an image may have to be decoded (a 164 kB PNG can declare 13,000 x 13,000 pixels and take 1.5 GB
#: to decode); larger ones are refused from their header, before any decoding
MAX_PIXELS = 40_000_000


def _decoded(src: Any, what: str, fix: str):
    """The RGB image in ``src`` (a path or a file object), decoded only if its header declares at most
    :data:`MAX_PIXELS` pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(src) as im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise DataSourceError(f"{what} is {w} x {h} pixels ({w * h / 1e6:.0f} megapixels; at most "
                                      f"{MAX_PIXELS / 1e6:.0f} are read): shrink it, or {fix}")
            return im.convert("RGB")
    except Image.DecompressionBombError as e:
        raise DataSourceError(f"{what} declares far more than {MAX_PIXELS / 1e6:.0f} megapixels ({e}): shrink it, "
                              f"or {fix}") from e
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DataSourceError(f"cannot read {what}: {e}; {fix}") from e
