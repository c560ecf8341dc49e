"""One escaping rule per surface for every string that comes from the other side of a dispute.

A suspect's name, a file name, a class name, a column name or an error that quotes one of them is the publisher's
text, not ours: wherever it is shown it must read literally, request nothing and run nothing.  Each surface has one
function here, and every place that writes such a string to that surface goes through it:

* :func:`html_text` - HTML (the report, its PDF): ``& < > " '`` as entities;
* :func:`plot_text` - plotly figures (titles, legends, axis labels, hover texts): plotly renders a subset of HTML
  (``<span style=...>``, ``<a href>``) and decodes entities after it parsed the tags, so entities read literally;
* :func:`markdown_text` - Streamlit markdown (the dashboard): markdown and HTML punctuation backslash-escaped, lines
  joined;
* :func:`markdown_html_text` - Streamlit markdown that allows HTML (the dashboard's chips and spinners): every HTML
  and markdown character as a numeric entity, literal in both;
* :func:`terminal_text` - the command line: control characters (ANSI escape codes, carriage returns, bidirectional
  overrides) shown as ``\\xNN`` / ``\\uNNNN`` instead of acting on the terminal.

Every function also drops what no surface may show: a string is cut to :data:`MAX_CHARS` characters.
"""
from __future__ import annotations

import html
import re
import unicodedata

#: the longest user string any surface shows whole (a name longer than this is cut, with an ellipsis)
MAX_CHARS = 2_000
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+!|~$:&=-])")
_LINES = re.compile(r"[\r\n\t\v\f\u2028\u2029]+")


def _cut(text: object) -> str:
    s = "" if text is None else str(text)
    return s if len(s) <= MAX_CHARS else s[:MAX_CHARS - 1] + "…"


def _controls(s: str, keep: str = "") -> str:
    """Control and format characters (C0, C1, bidirectional overrides, zero-width marks) as visible escapes, but
    those in ``keep``."""
    return "".join(c if c in keep or unicodedata.category(c) not in ("Cc", "Cf") else
                   (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}") for c in s)


def html_text(text: object) -> str:
    """``text`` for HTML element content or an attribute value."""
    return html.escape(_cut(text), quote=True)


def plot_text(text: object) -> str:
    """``text`` for a plotly string (trace name, category, title, annotation, hover template): shown literally, with
    no tag, link or style (and no ``%{...}`` template field) taking effect."""
    return html.escape(_cut(text), quote=False).replace("%{", "%&#123;")  # plotly knows &amp; &lt; &gt;, not &quot;


_AUTOLINK = re.compile(r"(?i)(://|www\.)")


def _no_autolink(s: str) -> str:
    """A zero-width space after ``:`` of ``://`` and in ``www.``: markdown turns a bare URL into a link even when its
    punctuation is escaped (GitHub-flavoured autolinks)."""
    return _AUTOLINK.sub(lambda m: ":\u200b//" if m.group(1) == "://" else m.group(1)[:3] + "\u200b.", s)


def markdown_text(text: object) -> str:
    """``text`` shown literally in Streamlit markdown: no link (bare URLs included), image, emphasis, HTML or heading,
    on one line."""
    return _MARKDOWN.sub(r"\\\1", _no_autolink(_controls(_LINES.sub(" ", _cut(text)))))


_MD_CHARS = set("\\`*_{}[]()<>#+!|~$:&=\"'-")


def markdown_html_text(text: object) -> str:
    """``text`` inside Streamlit markdown that allows HTML (``unsafe_allow_html``): HTML and markdown punctuation as
    numeric entities (a backslash would show inside an HTML block), on one line."""
    return "".join(f"&#{ord(c)};" if c in _MD_CHARS else c
                   for c in _no_autolink(_controls(_LINES.sub(" ", _cut(text)))))


def terminal_text(text: object, *, lines: bool = False) -> str:
    """``text`` for a terminal: no escape sequence, carriage return or direction override acts on it; a line break
    too is shown as ``\\x0a`` unless ``lines`` (a message of ours, several lines long, that quotes names)."""
    return _controls(_cut(text), "\n" if lines else "")
