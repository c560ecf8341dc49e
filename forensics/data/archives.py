"""Safe extraction of an uploaded zip of an image folder or a model folder: no absolute or ``..`` paths, no links,
bounded in size and entries."""
from __future__ import annotations

from pathlib import Path

from ..errors import DataSourceError
from ..runtime import settings
from .images import IMAGE_SUFFIXES

CHUNK = 1 << 20  # bytes copied at a time: an entry is never held whole in memory


def extract_zip(data: bytes, dest: str | Path, *, max_bytes: int | None = None, max_files: int = 200_000) -> Path:
    """Extract an uploaded zip of an image folder safely into ``dest`` and return the data root.

    Refuses absolute paths, ``..`` components, links, and archives that would unpack to more than
    ``max_bytes`` (default: ``FORENSICS_MAX_UNPACKED_MB``) or ``max_files`` entries (zip bombs); entries are copied
    in chunks and counted as they are written, so an entry that unpacks to more than it declares is stopped too.
    If the archive holds a single top folder that contains the class folders, that folder is returned.
    """
    import io
    import stat
    import zipfile

    if max_bytes is None:
        max_bytes = settings.current().max_unpacked_mb * 1024 ** 2
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
        too_big = (f"(at most {max_bytes / 1024 ** 2:,.0f} MB, {settings.MAX_UNPACKED_MB}); give a folder path on the "
                   "server instead, or split the data")
        if total > max_bytes:
            raise DataSourceError(f"the zip unpacks to {total / 1024 ** 2:,.0f} MB {too_big}")
        for info in infos:
            name = info.filename
            parts = Path(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise DataSourceError(f"the zip contains an unsafe path {name!r} (absolute or with '..'); "
                                      "nothing was extracted. Re-create the zip from the data folder itself")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DataSourceError(f"the zip contains a link {name!r}; nothing was extracted")
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        for info in infos:
            if info.is_dir() or Path(info.filename).name.startswith(".") or "__MACOSX" in info.filename:
                continue
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    while chunk := src.read(CHUNK):
                        written += len(chunk)
                        if written > max_bytes:
                            raise DataSourceError(f"the zip unpacks to more than it declares {too_big}")
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError, OSError) as e:
                raise DataSourceError(f"the zip is damaged at {info.filename!r} ({e}); re-create it") from e
    entries = [p for p in dest.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        inner = [p for p in entries[0].iterdir() if p.is_dir()]
        if inner and not any(p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES for p in entries[0].iterdir()):
            return entries[0]
    return dest
