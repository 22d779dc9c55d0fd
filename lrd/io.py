"""Atomic file output and small I/O helpers shared by every stage.

Every artefact is first written to a hidden sibling path and then renamed into place, so a
crashed or interrupted stage leaves the previous outputs exactly as they were.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import decimal
import hashlib
import io
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from lrd.errors import DataError, MissingUpstreamError


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` in one rename.

    Works for files and directories. On any exception the temporary path is removed and
    `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"nothing was written to {tmp} for {path}")
        if path.is_dir() and not path.is_symlink():
            # A directory cannot be replaced by rename(2); move the old one aside first so
            # that at every instant one complete version exists.
            old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


def remove_leftovers(*outputs: str | os.PathLike) -> None:
    """Remove what a killed run left of its atomic writes: the temporary siblings of `outputs`
    and, inside output folders, those of the files in them."""
    for out in map(Path, outputs):
        found = list(out.parent.glob(f".{out.name}.tmp-*")) + list(out.parent.glob(f".{out.name}.old-*"))
        if out.is_dir():
            found += [p for pattern in (".*.tmp-*", ".*.old-*") for p in out.rglob(pattern)]
        for path in found:
            _remove(path)


def write_parquet(table: pa.Table, path: str | os.PathLike, row_group_size: int | None = None) -> None:
    """Write one Parquet file atomically (zstd, statistics on, row groups for streaming)."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(o: Any) -> Any:
    """JSON for what the pipeline and DuckDB hand over: numpy values, paths, decimals, dates, ..."""
    if hasattr(o, "tolist"):  # numpy scalars and arrays
        return o.tolist()
    if isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, (datetime.date, datetime.time)):
        return o.isoformat()
    if isinstance(o, datetime.timedelta):
        return o.total_seconds()
    if isinstance(o, (bytes, bytearray)):
        return o.hex()
    return str(o)  # Path, UUID, ...


def read_json(path: str | os.PathLike, fix: str = "re-run the stage that wrote it (`dvc repro -f <stage>`)",
              expect: type | None = dict) -> Any:
    """A JSON file a stage wrote; a damaged one (or one of another shape) is a DataError naming it and `fix`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path} is not valid JSON ({str(exc)[:80]}): {fix}") from None
    if expect is not None and not isinstance(data, expect):
        raise DataError(f"{path} holds a {type(data).__name__}, not a JSON {'object' if expect is dict else expect.__name__}: {fix}")
    return data


def read_parquet(path: str | os.PathLike, stage: str, columns: list[str] | None = None) -> pa.Table:
    """Read an upstream Parquet output, naming the stage to run when it is missing."""
    path = Path(path)
    if not path.exists():
        raise MissingUpstreamError(f"{path} does not exist: run `dvc repro {stage}` first")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path} is not a readable Parquet file ({exc}): re-run `dvc repro -f {stage}`") from None


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_csv(rows: list[dict], path: str | os.PathLike) -> None:
    """One row per dict (a training curve: one per epoch, and seed); columns are the union of the rows' keys."""
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
