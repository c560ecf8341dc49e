"""What users upload, kept in the artifact store under its SHA-256: a black-box suspect's answers (so the audit record
can name them and ``holmes-forensics reverify`` finds them again), model weights, and zipped folders extracted safely.
Errors name the user's own file, never a path inside the store."""
from __future__ import annotations

import contextlib
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..audit.sources import ANSWER_SUFFIXES
from ..errors import ConfigError, ForensicsError, LogitsFileError
from ..runtime.access import UPLOADS
from ..runtime.store import ArtifactStore


def store_answers(store: ArtifactStore, data: bytes, filename: str) -> str:
    """Keep an uploaded answers file in the store (content-addressed); return its path."""
    suffix = Path(filename).suffix.lower()
    if suffix not in ANSWER_SUFFIXES:
        raise LogitsFileError(f"{filename!r}: upload the suspect's answers as .csv or .npy")
    digest = hashlib.sha256(data).hexdigest()
    folder = store.root / UPLOADS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest}{suffix}"
    if not path.exists():
        _write_once(path, data)
    return str(path)


def answers_stored(store: ArtifactStore, data: bytes, filename: str) -> bool:
    """Whether :func:`store_answers` holds these answers already (for another suspect, or an earlier audit)."""
    suffix = Path(filename).suffix.lower()
    return (store.root / UPLOADS / f"{hashlib.sha256(data).hexdigest()}{suffix}").is_file()


def _write_once(path: Path, data: bytes) -> None:
    """Write a content-addressed file atomically (a unique temporary name: two sessions may upload it at once)."""
    import tempfile

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with open(fd, "wb") as f:
        f.write(data)
    Path(tmp).replace(path)


MODEL_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")


def store_upload(store: ArtifactStore, data: bytes, filename: str, what: str) -> Path:
    """Keep an uploaded model or data file in the store under its SHA-256 (an upload seen before is reused).

    ``what`` is ``"model"`` (a weights file, or a zipped ``save_for_hf`` folder) or ``"data"`` (a zipped image
    folder).  A zip is extracted safely (:func:`forensics.data.extract_zip`) and the folder it holds returned; if
    that fails, nothing is left behind.  Errors name ``filename``, never the store's paths."""
    suffix = Path(filename).suffix.lower()
    allowed = (*MODEL_SUFFIXES, ".zip") if what == "model" else (".zip",)
    if suffix not in allowed:
        hint = ("a weights file (.safetensors, .pth) or a zipped folder written by timm's save_for_hf"
                if what == "model" else "a .zip of the folder (one subfolder per class)")
        raise ConfigError(f"{filename!r}: upload {hint}")
    digest = hashlib.sha256(data).hexdigest()[:32]
    target = _upload_target(store, data, filename, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix != ".zip":
        if not target.exists():
            _write_once(target, data)
        return target
    with store.lock(f"upload-{what}", digest):  # two sessions uploading the same zip extract it once
        return _extract_upload(data, target, filename, what)


def _upload_target(store: ArtifactStore, data: bytes, filename: str, what: str) -> Path:
    """Where :func:`store_upload` keeps ``data``: a file named after its SHA-256, or the folder a zip unpacks to."""
    suffix = Path(filename).suffix.lower()
    digest = hashlib.sha256(data).hexdigest()[:32]
    return store.root / UPLOADS / what / (digest if suffix == ".zip" else f"{digest}{suffix}")


@contextlib.contextmanager
def upload_kept_if_accepted(store: ArtifactStore, data: bytes, filename: str, what: str) -> Iterator[Path]:
    """:func:`store_upload`, for a block that checks the upload (loads the model, reads the data): if the block
    raises, an upload this call stored is removed again, so a refused file leaves nothing in the store (one that
    was there before, for an accepted suspect, stays)."""
    target = _upload_target(store, data, filename, what)
    existed = target.exists()
    stored = store_upload(store, data, filename, what)
    try:
        yield stored
    except Exception:  # not a web framework's control flow (Streamlit's rerun is a BaseException)
        if not existed:
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        raise


def _extract_upload(data: bytes, dest: Path, filename: str, what: str) -> Path:
    from ..data.archives import extract_zip

    marker = dest / ".root"
    if marker.is_file():
        return Path(marker.read_text())
    shutil.rmtree(dest, ignore_errors=True)
    try:
        root = extract_zip(data, dest)
        if what == "model":  # the folder save_for_hf wrote: the one holding config.json
            configs = sorted(root.rglob("config.json"), key=lambda q: len(q.parts))
            if not configs:
                raise ConfigError(f"{filename!r} holds no config.json: zip the folder that timm's save_for_hf "
                                  "wrote (config.json and model.safetensors), or upload the weights file itself")
            root = configs[0].parent
    except Exception as e:
        shutil.rmtree(dest, ignore_errors=True)
        if isinstance(e, ForensicsError):
            msg = str(e).replace(str(dest), filename)
            raise ConfigError(msg if filename in msg else f"{filename}: {msg}") from e
        raise
    marker.write_text(str(root))
    return root
