"""Safe extraction of an uploaded zip of an image folder or a model folder: no absolute or ``..`` paths, no links,
bounded in size and entries."""
from __future__ import annotations

from pathlib import Path

from ..errors import DataSourceError
from .images import IMAGE_SUFFIXES


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
