"""dashboard.widgets: names from the other side of a dispute are shown literally in Streamlit markdown."""
from __future__ import annotations

import re

from dashboard.widgets import md_text


def test_a_name_never_becomes_markdown_an_image_a_link_or_a_streamlit_directive():
    for payload in ("![x](http://127.0.0.1:1/x)", "[click](http://127.0.0.1:1/)", ":red[alarm] :material/warning:",
                    "**bold** _it_ `code` <img src=x> # head", "a | table | row"):
        shown = md_text(payload)
        # every markdown-active character is escaped, so the rendered text is the payload itself
        # (a zero-width space after "http:" keeps a bare URL from becoming a link)
        assert re.sub(r"\\(.)", r"\1", shown).replace("\u200b", "") == payload
        for ch in "![]():`*_<>#|":
            assert not re.search(r"(?<!\\)" + re.escape(ch), shown), (payload, ch, shown)
