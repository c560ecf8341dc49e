"""Who may use a shared dashboard, and which server files any audit may read.

Two settings make a server safe to share (see SECURITY.md); on your own machine neither is set and nothing changes:

* ``FORENSICS_DATA_ROOT``: every server path an audit reads (a model folder or weights file, a data folder, a file
  named inside a CSV listing or a dataset's metadata, an audit record, an answers file, a list of suspects) must lie
  under this folder once links are resolved; :func:`allowed_path` refuses anything else, in the dashboard and the
  command line alike.  Uploads are kept in the artifact store and are read from there.
* ``FORENSICS_USERS_FILE``: the dashboard asks for a name and password (lines ``name:scrypt$N$r$p$salt$hash`` written
  by ``holmes-forensics add-user``) and shows each user only the audits they created.  With a users file but no data
  root, no server path may be read at all (uploads and the demo still work).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from ..errors import ConfigError
from . import settings

NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


class AccessError(ConfigError):
    """A path outside the data root, or a user who may not do what was asked."""


def data_root() -> Path | None:
    """The folder every server path must lie under (resolved), or None when any path may be read."""
    s = settings.current()
    return s.data_root.resolve() if s.data_root is not None else None


def shared() -> bool:
    """True when the dashboard is shared (a users file is set): logins, owners, and server paths only under the data
    root."""
    return settings.current().users_file is not None


#: the store's folder of uploads (forensics.cases.uploads): what the dashboard extracted there may be read in any mode
UPLOADS = "uploads"


def _within(real: Path, root: Path) -> bool:
    return real == root or root in real.parents


def uploads_root() -> Path:
    return (settings.current().store / UPLOADS).resolve()


def allowed_path(path: str | os.PathLike, what: str = "path") -> Path:
    """``path`` (``~`` expanded) when the audit may read it: anywhere on your own machine; under the data root (or the
    store's uploads) on a shared server, links resolved first, so a link inside the root that points out of it is
    refused too."""
    p = Path(path).expanduser()
    root = data_root()
    if root is None and not shared():
        return p
    real = p.resolve()
    if _within(real, uploads_root()) or (root is not None and _within(real, root)):
        return p
    if root is None:
        raise AccessError(f"this server reads no server paths ({what} {str(path)!r}): upload the file instead, or ask "
                          f"the operator to set {settings.DATA_ROOT}")
    raise AccessError(f"the {what} {str(path)!r} is outside the folder this server may read ({root}); put it there, "
                      "or upload it")


def upload_folder(path: Path) -> Path | None:
    """The extracted upload that ``path`` lies in (``uploads/<kind>/<digest>``), or None."""
    real, up = path.expanduser().resolve(), uploads_root()
    if not _within(real, up) or real == up:
        return None
    parts = real.relative_to(up).parts
    return up.joinpath(*parts[:2]) if len(parts) >= 2 else None


def check_paths(paths: list[Path] | None, what: str, *, source: Path | None = None) -> None:
    """Every file a listing or a dataset's metadata names: under the data root on a shared server (as
    :func:`allowed_path`), and, in any mode, inside the upload itself when ``source`` is an uploaded zip's folder
    (its metadata.csv may name ``/etc/...`` or ``../``: the zip's own files only)."""
    if paths is None:
        return
    own = upload_folder(source) if source is not None else None
    if own is not None:
        for p in paths:
            if not _within(p.expanduser().resolve(), own):
                raise AccessError(f"the uploaded data names a file outside the upload ({p.name!r}); an uploaded "
                                  "listing may name only files inside its own zip")
        return
    if data_root() is None and not shared():
        return
    for p in paths:
        allowed_path(p, what)


# -- users ------------------------------------------------------------------------------------------------------
def hash_password(password: str) -> str:
    """A line's password part: scrypt with a random salt."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def _users(path: Path) -> dict[str, str]:
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ConfigError(f"{settings.USERS_FILE}: cannot read {path} ({e.strerror}); create it with "
                          "holmes-forensics add-user") from None
    users = {}
    for line in lines:
        name, sep, hashed = line.strip().partition(":")
        if sep and NAME.match(name):
            users[name] = hashed
    return users


def check_password(name: str, password: str) -> bool:
    """Whether ``name`` and ``password`` match a line of the users file (constant time in the password)."""
    path = settings.current().users_file
    if path is None or not isinstance(name, str) or not isinstance(password, str):
        return False
    hashed = _users(path).get(name.strip())
    try:
        scheme, n, r, p, salt, digest = (hashed or "scrypt$16384$8$1$AAAA$AAAA").split("$")
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(base64.b64decode(digest)) or 32)
    except (ValueError, TypeError):
        return False
    return hashed is not None and scheme == "scrypt" and hmac.compare_digest(got, base64.b64decode(digest))


def add_user(path: str | os.PathLike, name: str, password: str) -> None:
    """Add ``name`` to the users file at ``path`` (or set a new password), readable by its owner only."""
    if not NAME.match(name or ""):
        raise ConfigError(f"{name!r} is not a user name: 1 to 64 letters, digits, '_', '.', '@' or '-'")
    if len(password) < 12:
        raise ConfigError("the password must have at least 12 characters")
    path = Path(path).expanduser()
    users = _users(path) if path.exists() else {}
    users[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.writelines(f"{n}:{h}\n" for n, h in sorted(users.items()))
    os.replace(tmp, path)


def check_endpoint(url: str) -> None:
    """On a shared dashboard, an API audit's endpoint must be a public address: a user must not make the server ask
    its own services, its cloud's metadata address or the private network behind it (unless the operator set
    FORENSICS_API_PRIVATE=1).  Every address the host name resolves to is checked; on your own machine, any."""
    import ipaddress
    import socket
    from urllib.parse import urlsplit

    if not shared() or settings.current().api_private:
        return
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError) as e:
        raise AccessError(f"the endpoint's host {host!r} does not resolve ({e}); check the URL") from e
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not ip.is_global or ip.is_multicast:
            raise AccessError(f"this shared dashboard asks only public endpoints, and {host!r} is a private, local "
                              "or reserved address; ask the operator (FORENSICS_API_PRIVATE=1 allows it)")


def quoted(value: object) -> str:
    """A value read from a file, for an error message: as it is on your own machine; withheld on a shared dashboard,
    whose messages never quote a file's content (a column name, a label, a listed path), so that naming a file in
    the data root does not become a way to read it."""
    return "(withheld on this shared server)" if shared() else repr(value)


def check_key_variable(name: str | None) -> None:
    """On a shared dashboard an API key must be typed (held in memory): naming a server variable would let a user send
    any of the server's secrets to an endpoint of their choosing.  On your own machine, any variable."""
    if name and shared():
        raise AccessError("on this shared server, type the API key itself (kept in memory only) instead of naming a "
                          "server variable")

