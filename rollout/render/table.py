"""Tables for people (fixed width for a terminal, Markdown for a ticket) and JSON for machines."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from wcwidth import wcswidth

# Characters a terminal or an editor acts on instead of showing: C0 and C1 controls (escape
# sequences, line breaks), DEL, and the bidirectional overrides that reorder what is shown.
_HIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(value: object) -> str:
    """`value` as text a person can read safely: every control or direction override shown as an
    escape (`\\x1b`, `\\u202e`), so that a username can neither drive the terminal (clear it, set
    its title) nor break a table's line, nor disguise itself. Machine formats keep the data exact."""
    text = "" if value is None else str(value)
    return _HIDDEN.sub(lambda m: _escape(m.group()), text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def width(text: str) -> int:
    """Columns a string takes on a terminal (wcwidth: wide CJK and emoji take two, combining marks
    none); a text `printable` made has no control character left to make it negative."""
    return max(wcswidth(text), 0)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A fixed-width text table; numbers right-aligned; every cell `printable`, wide characters
    counted as the two columns they take."""
    cells = [[printable(v) for v in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        widths = [max(w, width(c)) for w, c in zip(widths, row, strict=True)]
    # A column of numbers (empty cells allowed) is right-aligned.
    numeric = [
        all(_is_number(row[i]) or not row[i] for row in cells) and any(row[i] for row in cells)
        for i in range(len(headers))
    ]

    def pad(value: str, size: int, right: bool) -> str:
        fill = " " * (size - width(value))
        return fill + value if right else value + fill

    def line(values: Sequence[str]) -> str:
        parts = [pad(v, w, num) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _is_number(value: str) -> bool:
    return value.replace(".", "", 1).isdigit()


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; a `|`, a line break or a control character in a cell cannot break it, and
    Markdown's own characters in data are shown, not interpreted."""

    def cell(v: Any) -> str:
        return _MARKDOWN.sub(lambda m: "\\" + m.group(), printable(v))

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


# Enough for data to stay data: no emphasis, no code span, no link or image, no HTML, no new cell.
_MARKDOWN = re.compile(r"[\\`*_\[\]<>|]")


def spreadsheet_safe(value: object) -> object:
    """A CSV cell that a spreadsheet will not run as a formula (`=HYPERLINK(…)`, `+…`, `-…`, `@…`):
    such a text is prefixed with `'`. Numbers pass as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False, default=str)


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 owner`, `2 owners`, `0 batches`."""
    return f"{count} {word if count == 1 else many or (word + 'es' if word.endswith(('s', 'ch')) else word + 's')}"
