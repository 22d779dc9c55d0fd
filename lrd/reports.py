"""Plain-file outputs for DVC: training curves as CSV (for `dvc plots`), metric summaries."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from lrd.io import atomic_path


def write_curve(rows: list[dict], path: Path) -> None:
    """One row per epoch (and seed); columns are the union of the rows' keys."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()})
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
