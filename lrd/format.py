"""Query results as text: an aligned table, CSV or JSON (what `lrd sql` and `lrd relations` print)."""

from __future__ import annotations

import csv
import decimal
import io
import json
import math
import re
from typing import Any, Sequence

from lrd.errors import ConfigError
from lrd.io import json_default


def format_table(columns: Sequence[str], rows: Sequence[Sequence], max_width: int = 40) -> str:
    """An aligned plain-text table: numbers right-aligned, text longer than max_width cut with …."""
    max_width = max(max_width, 2)
    # Numbers are never cut: a clipped number would read as a different number.
    cells = [[_cell_text(v) if _is_number(v) else _clip(_cell_text(v), max_width) for v in row] for row in rows]
    header = [_clip(str(c), max_width) for c in columns]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(header)]
    numeric = [_is_numeric_column([row[i] for row in rows]) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def format_csv(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """CSV with a header row; NULL is an empty field, lists and structs are JSON."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_value(v) for v in row])
    return buf.getvalue().rstrip("\n")


def format_json(columns: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A JSON list of objects, one per row (one line each); NaN and infinities become null."""
    keys = _unique(columns)
    objects = [json.dumps({k: _json_value(v) for k, v in zip(keys, row)}, default=json_default, ensure_ascii=False) for row in rows]
    if not objects:
        return "[]"
    return "[\n" + ",\n".join(objects) + "\n]"


FORMATS = {"table": format_table, "csv": format_csv, "json": format_json}


def format_rows(columns: Sequence[str], rows: Sequence[Sequence], fmt: str = "table", max_width: int = 40) -> str:
    """The result in one of FORMATS."""
    if fmt == "table":
        return format_table(columns, rows, max_width=max_width)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt](columns, rows)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, decimal.Decimal)) and not isinstance(v, bool)


def _is_numeric_column(values: Sequence) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(_is_number(v) for v in present)


def _format_float(x: float) -> str:
    """4 decimals; 4 significant digits in scientific notation where that would hide the value."""
    if not math.isfinite(x):
        return str(x)
    if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e9):
        return f"{x:.3e}"
    return f"{x:.4f}"


def _cell_text(v: Any) -> str:
    """How one value reads in the table: on one line, NULL spelled out."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _format_float(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_cell_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_cell_text(x)}" for k, x in v.items()) + "}"
    # Newlines and tabs would break the row apart.
    return printable(re.sub(r"[\r\n\t]+", " ", str(v)))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with control characters shown as \\xNN: an item title holding terminal escape
    sequences must not clear, recolour or retitle the terminal it is printed to."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(_json_value(v), default=json_default, ensure_ascii=False)
    return v


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN or Infinity
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return v


def _unique(columns: Sequence[str]) -> list[str]:
    """Column names made unique (`SELECT a.x, b.x` has two "x"), so no JSON key is lost."""
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        name = c
        while name in seen:
            seen[c] += 1
            name = f"{c}_{seen[c]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out
