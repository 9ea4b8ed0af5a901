"""Plain-text tables and JSON for the on-call commands (no colour, stable column order)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as an aligned table with upper-case headers; ``(none)`` when empty."""
    if not rows:
        return "(none)"
    names = list(columns or rows[0].keys())
    cells = [[_cell(row.get(name)) for name in names] for row in rows]
    widths = [max(len(n), *(len(r[i]) for r in cells)) for i, n in enumerate(names)]
    lines = ["  ".join(n.upper().ljust(w) for n, w in zip(names, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
