"""Adding suspects to a case on 1 · Load: one at a time or many from a list, each checked the same way.

Nothing here imports Streamlit: the page collects the input, calls these functions and draws what they
return.  A list is read with the CLI's rules (:func:`forensics.cases.scan.parse_suspect_lines`); every source
in it goes through :func:`add_model_suspect` or :func:`add_answers_suspect`, exactly as a suspect added
alone, and one refused line never stops the others.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from forensics.audit.answers import read_outputs
from forensics.audit.sources import HUB, LOCAL_DIR, check_suspect, data_classes, is_answers_file, known_kind
from forensics.cases.case import Case, Suspect
from forensics.cases.scan import parse_suspect_lines
from forensics.cases.uploads import answers_stored, store_answers
from forensics.demo import DEMO
from forensics.demo import assets as demo_assets
from forensics.errors import ConfigError, ForensicsError
from forensics.runtime.access import allowed_path
from forensics.runtime.store import ArtifactStore

log = logging.getLogger("forensics.app")

# weights files that say nothing about the model: named after their folder instead
GENERIC_STEMS = {"model", "pytorch_model", "weights", "checkpoint", "best", "last", "final", "state_dict"}


@dataclass
class LineOutcome:
    """What became of one source of a list: ``added`` (as ``name``), ``skipped`` (already a suspect, as
    ``name``) or ``refused`` (``reason`` says why, in the words a suspect added alone would get)."""

    source: str
    status: str
    name: str | None = None
    reason: str | None = None


def default_name(source: str, taken: Iterable[str] = ()) -> str:
    """A short name for a suspect: the demo suspect's own name, the Hub repo's or the folder's name, or the file's
    name (its folder's too when the file is called model.safetensors or the like); `` (2)``, `` (3)``... when
    it is ``taken`` already."""
    s = source.strip()
    base = s
    if s.startswith(DEMO):
        demo = demo_assets.SUSPECTS_BY_KEY.get(s[len(DEMO):])
        base = demo.name if demo else s[len(DEMO):]
    elif s.startswith(HUB):
        repo, _, rev = s[len(HUB):].partition("@")
        base = repo.rstrip("/").rsplit("/", 1)[-1] + (f"@{rev[:12]}" if rev else "")
    else:
        p = Path(s.removeprefix(LOCAL_DIR).rstrip("/")).expanduser()
        if p.suffix and p.stem.lower() in GENERIC_STEMS and p.parent.name:
            base = f"{p.parent.name}/{p.name}"
        else:
            base = p.name or s
    base = base or s
    taken = set(taken)
    name, i = base, 1
    while name in taken:
        i += 1
        name = f"{base} ({i})"
    return name


def add_model_suspect(case: Case, source: str, *, name: str | None = None, revision: str | None = None,
                      upload: str | None = None) -> Suspect:
    """Load the suspect model once to check it (classes, architecture), then add it to ``case`` with its card.
    Raises the error loading it would raise; then nothing is added."""
    if case.spec is None:
        raise ConfigError("load the demo or your own victim first, then add suspects")
    label = name or upload or default_name(source, [s.name for s in case.suspects])  # a folder by its own name
    if any(s.name == label for s in case.suspects):  # before loading it: that can take a while
        raise ConfigError(f"a suspect named {label!r} is already in the list; remove it or pick another name")
    card = check_suspect(case.spec, source, revision=revision,
                         victim_arch=(case.cards.get("victim") or {}).get("arch"))
    suspect = Suspect(label, source, kind=known_kind(source), revision=revision, upload=upload)
    case.add_suspect(suspect)
    if card is not None:
        if upload:
            card["source"] = f"uploaded {upload}"
        case.cards[label] = card
    return suspect


def add_answers_suspect(case: Case, store: ArtifactStore, data: bytes, filename: str, *,
                        name: str | None = None) -> Suspect:
    """Keep a black-box suspect's answers in the store and add them to ``case``, checked now: against the query
    set when the audit is built, else their format and class count.  A refused file leaves nothing in the
    store."""
    if case.spec is None:
        raise ConfigError("load the demo or your own victim first, then add suspects")
    label = name or filename
    if any(s.name == label for s in case.suspects):
        raise ConfigError(f"a suspect named {label!r} is already in the list; remove it or pick another name")
    existed = answers_stored(store, data, filename)
    path = store_answers(store, data, filename)
    query_set = None
    try:
        if case.audit is not None:  # check shape and values now, not after the next run
            read_outputs(path, len(case.audit.queries), case.audit.num_classes, name=filename)
            query_set = case.audit.queries.fingerprint
        else:  # the query set is not built yet: the format and the class count
            read_outputs(path, None, len(data_classes(case.spec.data, quick=case.spec.quick)), name=filename)
    except ForensicsError:
        if not existed:  # a refused file leaves nothing in the store (the same file kept for another suspect stays)
            Path(path).unlink(missing_ok=True)
        raise
    suspect = Suspect(label, f"answers:{filename}", answers=path, query_set=query_set, upload=filename)
    case.add_suspect(suspect)
    return suspect


def read_list(text: str = "", upload: tuple[str, bytes] | None = None) -> list[str]:
    """The sources of the text box and of an uploaded list file ``(file name, content)``, in that order, each
    once (:func:`forensics.cases.scan.parse_suspect_lines`'s rules)."""
    parts, names = [], []
    if text.strip():
        parts.append(text)
        names.append("the text box")
    if upload is not None:
        fname, content = upload
        if Path(fname).suffix.lower() not in (".txt", ".lst", ".list", ""):
            raise ConfigError(f"{fname!r}: upload the list as a .txt file with one source per line")
        try:
            parts.append(content.decode("utf-8-sig"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"{fname!r} is not a text file; upload a .txt file with one source per line") from e
        names.append(fname)
    if not parts:
        raise ConfigError("type one suspect source per line, or upload a .txt list")
    return parse_suspect_lines("\n".join(parts), " and ".join(names))


def add_many(case: Case, store: ArtifactStore, sources: list[str], *,
             on_line: Callable[[int, int, str], None] | None = None) -> list[LineOutcome]:
    """Check and add each source as if it were added alone; a refused one says why and never stops the others.
    A source already in the case is skipped.  ``on_line(i, n, source)`` is called before each check (for a
    progress bar).  Answers files are checked against the audit as it is now; the caller forgets the old
    verdicts once anything was added."""
    out: list[LineOutcome] = []
    for i, source in enumerate(sources):
        if on_line is not None:
            on_line(i, len(sources), source)
        known = next((s.name for s in case.suspects if source in (s.source, _source_with_revision(s))), None)
        if known is not None:
            out.append(LineOutcome(source, "skipped", name=known))
            continue
        name = default_name(source, (s.name for s in case.suspects))
        try:
            if is_answers_file(source):
                path = allowed_path(source, "answers file")
                if not path.is_file():
                    raise ConfigError(f"answers file {source!r} does not exist on this server")
                add_answers_suspect(case, store, path.read_bytes(), path.name, name=name)
            else:
                add_model_suspect(case, source, name=name)
            out.append(LineOutcome(source, "added", name=name))
        except ForensicsError as e:
            out.append(LineOutcome(source, "refused", reason=_without_source(str(e), source)))
        except Exception as e:
            log.exception("unexpected error while checking the suspect %s", source)
            out.append(LineOutcome(source, "refused", reason=f"unexpected error: {type(e).__name__}: {e}"))
    return out


def _source_with_revision(s: Suspect) -> str:
    return f"{s.source}@{s.revision}" if s.revision and s.source.startswith(HUB) else s.source


def _without_source(reason: str, source: str) -> str:
    """The reason without the source it begins with (the report shows the line beside it)."""
    for prefix in (f"{source}: ", f"{source.removeprefix(LOCAL_DIR)}: "):
        if reason.startswith(prefix) and len(reason) > len(prefix):
            return reason[len(prefix)].upper() + reason[len(prefix) + 1:]
    return reason
