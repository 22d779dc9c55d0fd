"""What every reader returns, and the careful file reading they share.

Every problem with an input file is one DataError naming the file, the line (and column) and
what to do; the helpers here give the readers that for free: a missing column, an empty id,
a value of the wrong type, bad UTF-8, a truncated or fake .gz, timestamps in the wrong unit,
an item described twice. A UTF-8 byte-order mark at the start of a file is dropped.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import logging
import re
import zlib
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from lrd.config.ingest import AttributeConfig
from lrd.errors import DataError

log = logging.getLogger(__name__)

LINKS_SCHEMA = pa.schema([("head", pa.string()), ("relation", pa.string()), ("tail", pa.string())])
SHARED_SCHEMA = pa.schema([("raw_id", pa.string()), ("relation", pa.string()), ("value", pa.string())])
UTF8_BOM = b"\xef\xbb\xbf"
# Release-year buckets of the LRD reference code (MovieLens): decades, then yearly from 1990.
YEAR_EDGES = (1900, 1940, 1950, 1960, 1970, 1980, 1985, 1990)


@dataclasses.dataclass
class RawDataset:
    """A dataset as its files describe it, with raw ids.

    interactions: user, item (string; int64 for pre-split datasets), timestamp (int64, unix
        seconds); plus `split` (train/dev/test) when the dataset comes already split.
    items: raw_id, title, and descriptive columns for text templates and attributes; for
        pre-split datasets also `item_id` (int64), the id the split files use.
    links: item-item triples (head, relation, tail) between raw item ids.
    shared: (raw_id, relation, value): items sharing a value get a `shares_<relation>` relation.
    candidates: for pre-split datasets, the stored evaluation candidates (user, split, target,
        negatives: list<int64> of the split files' item ids; file, line: where each row is).
    The format's defaults, used where params.yaml leaves the setting null:
    attributes: the item columns that become attribute relations.
    text_template: the item description (see lrd.data.text).
    model_relations: the predefined relation kinds the models use.
    keep_ids: a pre-split dataset: its split and candidates are kept as stored.
    notes: counts of what the reader dropped and why, for stats.json.
    """

    interactions: pa.Table
    items: pa.Table
    links: pa.Table = dataclasses.field(default_factory=LINKS_SCHEMA.empty_table)
    shared: pa.Table = dataclasses.field(default_factory=SHARED_SCHEMA.empty_table)
    candidates: pa.Table | None = None
    attributes: dict[str, AttributeConfig] = dataclasses.field(default_factory=dict)
    text_template: str = "{title}"
    model_relations: tuple[str, ...] = ("attribute",)
    keep_ids: bool = False
    files: dict[str, Path] = dataclasses.field(default_factory=dict)
    notes: dict[str, int] = dataclasses.field(default_factory=dict)  # what the reader dropped, counted (stats.json)


# Item columns with a meaning of their own: the ids, the title, the rendered text, and ingest's
# item number. An attribute column of the same name would replace them (every item's text
# "BRAND1", raw ids that repeat), so readers rename such a column.
RESERVED_ITEM_COLUMNS = ("item", "item_id", "raw_id", "title", "text")


def attribute_name(name: str, taken, path: Path, column: str, reserved=RESERVED_ITEM_COLUMNS) -> str:
    """`name` for an attribute read from `column` of `path`, or `<name>_attr` (logged) when that
    name is reserved or already taken by another column."""
    if not name.strip():
        raise DataError(f"{path}: line 1: column `{column}` has no name. Name it (the attribute it holds).")
    if name not in reserved and name not in taken:
        return name
    renamed = f"{name}_attr"
    if renamed in taken:
        raise DataError(f"{path}: column `{column}` would be the item column `{name}`, which is taken, and `{renamed}` is "
                        "taken too. Rename the column.")
    log.warning("%s: column `%s` would replace the items' own `%s`; read as the attribute `%s` (name that one in "
                "`ingest.attributes` / `ingest.text_template`)", path, column, name, renamed)
    return renamed


def find_one(folder: Path, patterns: list[str], what: str, required: bool = True) -> Path | None:
    """The single file in `folder` (searched recursively) matching one of `patterns`."""
    for pattern in patterns:
        hits = sorted(p for p in folder.rglob(pattern) if p.is_file())
        if len(hits) > 1:
            raise DataError(
                f"{folder}: found several {what} files ({', '.join(str(h) for h in hits[:4])}); "
                "keep exactly one in the dataset folder"
            )
        if hits:
            return hits[0]
    folders = sorted(p for pattern in patterns for p in folder.rglob(pattern) if p.is_dir())
    if folders:  # skipped silently, the dataset would lose that file's columns
        raise DataError(f"{folders[0]}: a folder where the {what} file is expected. Put the file there, or remove the folder.")
    if required:
        raise DataError(f"{folder}: no {what} file (looked for {', '.join(patterns)}); check the dataset's `format` and `source` in params.yaml")
    return None


# --------------------------------------------------------------------------------------------
# bytes


def read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped for a .gz name, without a UTF-8 byte-order mark."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                data = f.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(unreadable(path, exc)) from None
    return strip_bom(data)


def strip_bom(data: bytes) -> bytes:
    # Spreadsheet programs write a BOM; left in, it becomes part of the first column's name.
    return data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data


def unreadable(path: Path, exc: BaseException) -> str:
    """Why a file could not be read, for the usual failures of downloaded and gzipped files."""
    if isinstance(exc, EOFError) or "end-of-stream" in str(exc):
        return (f"{path}: the gzip file is truncated (it ends before its end marker): the copy is incomplete. "
                "Download or copy it again.")
    if isinstance(exc, gzip.BadGzipFile) and "Not a gzipped file" in str(exc):
        return (f"{path}: not a gzip file although its name ends in .gz. Download it again, or drop the .gz "
                "from its name if it is plain text.")
    if isinstance(exc, (gzip.BadGzipFile, zlib.error)):
        return f"{path}: the gzip data is corrupt ({exc}). Download or copy the file again."
    reason = getattr(exc, "strerror", None) or str(exc)
    return f"{path}: cannot read the file ({reason})."


def utf8_problem(path: Path, data: bytes) -> str | None:
    """'line N: not UTF-8 text' for the first line that is not valid UTF-8, else None."""
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"{path}: line {line}: not UTF-8 text ({exc.reason} at byte {exc.start}). Save the file as UTF-8."


def head(data: bytes) -> bytes:
    """The bytes of the first line (without copying the rest, as split would)."""
    end = data.find(b"\n")
    return data if end < 0 else data[:end]


def first_line(path: Path, data: bytes, encoding: str = "utf-8") -> str:
    """The header line, decoded; bad bytes are a DataError naming line 1."""
    raw = head(data).rstrip(b"\r")
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line 1: not {encoding} text ({exc.reason} at byte {exc.start}). Fix the header.") from None


def line_numbers(data: bytes, has_header: bool) -> np.ndarray:
    """The file line (1-based) of every row pyarrow's CSV reader returns: it skips empty lines."""
    buf = np.frombuffer(data + b"\n", np.uint8)  # the sentinel ends a last line without a newline
    ends = np.flatnonzero(buf == 10)
    starts = np.r_[0, ends[:-1] + 1]
    length = ends - starts
    only_cr = (length == 1) & (buf[starts] == 13)  # "\r\n": an empty line with a Windows ending
    lines = np.flatnonzero((length > 0) & ~only_cr) + 1
    return lines[1:] if has_header else lines


# --------------------------------------------------------------------------------------------
# delimited text


def read_delimited(
    path: Path,
    column_types: dict[str, pa.DataType],
    *,
    delimiter: str = "\t",
    header: list[str] | None = None,
    data: bytes | None = None,
    encoding: str = "utf8",
    quoting: bool = False,
    rename: dict[str, str] | None = None,
    required: Iterable[str] = (),
    with_lines: bool = False,
) -> pa.Table:
    """Read a delimited text file with explicit column types and errors that name the line.

    `column_types` lists the columns the caller needs; a missing or misnamed column is an
    error listing the columns the file has. `header` gives the names when the file has none.
    `rename` maps names as written in the file to the names used in `column_types`.
    `required` columns must hold a value in every row (an empty one is an error naming the
    line); elsewhere an empty numeric field is null and an empty string field "". Only an
    empty field is null: "nan" in an integer column is an error, in a float column NaN.
    `with_lines` adds an int32 column `line`: each row's line in the file.
    """
    rename = rename or {}
    data = data if data is not None else read_bytes(path)
    if not data or data.isspace():  # (isspace stops at the first other byte; strip would copy)
        raise DataError(f"{path}: the file is empty. Check the download or the source.")
    read_opts = pcsv.ReadOptions(column_names=header, encoding=encoding, block_size=1 << 24)
    parse_opts = pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting else False, newlines_in_values=False)
    names = _header_names(path, data, header, encoding, delimiter, read_opts, parse_opts)
    file_for_ours = {rename.get(n, n): n for n in names}
    _check_unique(path, names, rename, column_types)
    missing = [c for c in column_types if c not in file_for_ours]
    if missing:
        other = next((d for d in (",", ";", " ", "\t", "|") if d != delimiter and len(names) == 1 and d in names[0]), None)
        separator = (f" The header reads as one column split by {other!r}: this file must be separated by {delimiter!r}. "
                     "Convert the separators" if other else " Rename the header")
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(names)}.{separator} "
            "or choose the matching `format` for the dataset."
        )
    convert = pcsv.ConvertOptions(
        column_types={file_for_ours[c]: t for c, t in column_types.items()},
        include_columns=[file_for_ours[c] for c in column_types],
        strings_can_be_null=False,
        null_values=[""],
    )
    try:
        table = pcsv.read_csv(io.BytesIO(data), read_options=read_opts, parse_options=parse_opts, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise DataError(_explain(path, data, str(exc), names, header is None, encoding, delimiter)) from None
    table = table.rename_columns([rename.get(n, n) for n in table.column_names])
    lines = None
    for name in required:
        empty = _empty(table.column(name))
        if empty is not None:
            lines = line_numbers(data, header is None) if lines is None else lines
            raise DataError(
                f"{path}: line {lines[empty[0]]}, column `{file_for_ours[name]}`: empty value"
                f"{f' ({len(empty)} such rows)' if len(empty) > 1 else ''}. Fill it in or remove that line."
            )
    if with_lines:
        lines = line_numbers(data, header is None) if lines is None else lines
        table = table.append_column("line", pa.array(lines[: table.num_rows], pa.int32()))
    return table


def _check_unique(path: Path, names: list[str], rename: dict[str, str], wanted) -> None:
    """Two header fields read as one column would leave one of them unread, silently."""
    seen: dict[str, str] = {}
    for n in names:
        ours = rename.get(n, n)
        if ours in wanted and ours in seen:
            same = f"`{n}` twice" if seen[ours] == n else f"`{seen[ours]}` and `{n}`, both read as `{ours}`"
            raise DataError(f"{path}: line 1: the header names {same}. Keep one of them, or rename the other.")
        seen[ours] = n


def _header_names(path, data, header, encoding, delimiter, read_opts, parse_opts) -> list[str]:
    if header is not None:
        return list(header)
    if encoding == "utf8":
        first_line(path, data)  # bad bytes in the header: say so before pyarrow does
    try:
        first = head(data) + b"\n"
        return pcsv.read_csv(io.BytesIO(first), read_options=read_opts, parse_options=parse_opts).schema.names
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: cannot read the header ({exc})") from None


def _empty(column: pa.ChunkedArray) -> np.ndarray | None:
    """Rows without a value (null, or a blank string), or None when every row has one."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        # (kernels with boolean output: trimming would copy every string)
        blank = pc.or_(pc.equal(pc.binary_length(column), 0), pc.utf8_is_space(column))
    else:
        blank = column.is_null()
    blank = pc.fill_null(blank, True)
    if not pc.any(blank).as_py():
        return None
    return np.flatnonzero(blank.to_numpy(zero_copy_only=False))


_CONVERSION = re.compile(r"column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'$", re.S)
_PARSE = re.compile(r"CSV parse error: (.*?): (.*)$", re.S)
_KIND = {"int8": "an integer", "int16": "an integer", "int32": "an integer", "int64": "an integer",
         "double": "a number", "float": "a number"}


def _explain(path: Path, data: bytes, message: str, names: list[str], has_header: bool, encoding: str, delimiter: str) -> str:
    """Turn pyarrow's message into one naming the line and column (searched only on error)."""
    if encoding == "utf8" and "invalid UTF8" in message:
        return utf8_problem(path, data) or f"{path}: not UTF-8 text. Save the file as UTF-8."
    text = data.decode("utf-8" if encoding == "utf8" else encoding, errors="replace")
    lines = [line.rstrip("\r") for line in text.split("\n")]  # (splitlines also splits at \x0c, \u2028, ...)
    first = 1 if has_header else 0
    conv = _CONVERSION.search(message)
    if conv:
        col, kind, bad = int(conv.group(1)), conv.group(2), conv.group(3)
        column = names[col] if col < len(names) else f"#{col + 1}"
        what = f"{_KIND.get(kind, 'a valid ' + kind)} ({kind})"
        for n, line in enumerate(lines[first:], start=first + 1):
            fields = line.split(delimiter)
            if col < len(fields) and fields[col] == bad:
                return f"{path}: line {n}, column `{column}`: {bad!r} is not {what}. Fix or remove that line."
        return f"{path}: column `{column}`: {bad!r} is not {what}. Fix or remove that line."
    parse = _PARSE.search(message)
    if parse:
        problem, row = parse.group(1), parse.group(2).rstrip("\n")
        for n, line in enumerate(lines, start=1):
            if line == row:
                return f"{path}: line {n}: {problem}. Fix or remove that line."
        return f"{path}: {problem} (in the row {row!r}). Fix or remove that line."
    return f"{path}: {message}"


# --------------------------------------------------------------------------------------------
# values


# Unix seconds a datetime can show (years 1..9999); anything beyond is a unit or data error.
SECONDS_MIN, SECONDS_MAX = -62_135_596_800, 253_402_300_799
# Values from 1e8 up are dates; their magnitude tells the unit (1e8 s is 1973, 1e11 s is 5138).
_UNITS = ((1e11, 1, "seconds"), (1e14, 10**3, "milliseconds"), (1e17, 10**6, "microseconds"), (9.3e18, 10**9, "nanoseconds"))


def unix_seconds(values: pa.ChunkedArray | pa.Array, path: Path, column: str, lines) -> tuple[pa.Array, np.ndarray | None]:
    """Timestamps (int64 or float64) as int64 unix seconds, checked; (seconds, order or None).

    Milliseconds, microseconds and nanoseconds are recognised by magnitude (the largest value)
    and converted, with a log line; a column mixing units, NaN, infinite or out-of-range values
    is a DataError naming the line. Converting drops the sub-second part, so when it does the
    second element is the stable order of the original values: taking the rows in that order
    keeps a user's events that share a second in their true order. `lines(rows)` gives the file
    lines of row indexes (called on error only).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count:
        row = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{path}: line {_line(lines, row)}, column `{column}`: empty value. Fill it in or remove that line.")
    v = values.to_numpy(zero_copy_only=False)
    if len(v) == 0:
        return pa.array(v.astype(np.int64)), None
    if v.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(v))
        if len(bad):
            raise DataError(
                f"{path}: line {_line(lines, bad[0])}, column `{column}`: {_show(v[bad[0]])} is not a timestamp"
                f"{f' ({len(bad)} such rows)' if len(bad) > 1 else ''}. Fix or remove that line."
            )
    # Whole-column passes only where needed: the usual case (seconds) costs a min and a max.
    lo, hi = v.min(), v.max()
    top = int(np.argmax(v) if abs(float(hi)) >= abs(float(lo)) else np.argmin(v))
    unit = next((u for u in _UNITS if abs(float(v[top])) < u[0]), None)
    if unit is None:
        raise DataError(
            f"{path}: line {_line(lines, top)}, column `{column}`: {_show(v[top])} is out of range for a timestamp "
            "(not even nanoseconds since 1970). Fix or remove that line."
        )
    limit, factor, name = unit
    if factor > 1:
        _check_one_unit(v, np.abs(v.astype(np.float64)), limit / 1000, path, column, lines, name, top)
    if v.dtype.kind == "f":
        seconds = np.floor(v / factor if factor > 1 else v).astype(np.int64)
    else:
        seconds = np.floor_divide(v.astype(np.int64, copy=False), factor) if factor > 1 else v.astype(np.int64, copy=False)
    if seconds.min() < SECONDS_MIN or seconds.max() > SECONDS_MAX:
        out = np.flatnonzero((seconds < SECONDS_MIN) | (seconds > SECONDS_MAX))
        raise DataError(
            f"{path}: line {_line(lines, out[0])}, column `{column}`: {_show(v[out[0]])} is not a date between the years 1 and 9999. "
            "Fix or remove that line."
        )
    if factor == 1:
        return pa.array(seconds), None
    first, last = (datetime.fromtimestamp(int(s), tz=timezone.utc).strftime("%Y-%m-%d") for s in (seconds.min(), seconds.max()))
    log.warning("%s: column `%s` holds %s since 1970 (largest %s); converted to seconds (%s to %s)",
                path, column, name, _show(v[top]), first, last)
    return pa.array(seconds), np.argsort(v, kind="stable")


def _check_one_unit(v, magnitude, unit_floor, path, column, lines, name, top) -> None:
    """A column in ms (say) must not also hold values that look like seconds since 1973."""
    dates = magnitude >= 1e8  # smaller values are counters or offsets: any unit fits them
    coarser = np.flatnonzero(dates & (magnitude < unit_floor))
    if len(coarser):
        row = coarser[0]
        raise DataError(
            f"{path}: column `{column}` mixes time units: line {_line(lines, top)} has {_show(v[top])} ({name}) but line "
            f"{_line(lines, row)} has {_show(v[row])}, a coarser unit. Write every timestamp in one unit (seconds since 1970)."
        )


def _show(value) -> str:
    """A numpy number as the file would write it: 880000000000, inf, nan, 1e+20."""
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def _line(lines, row) -> int:
    return int(np.asarray(lines(np.array([int(row)])))[0])


def duplicate_ids(ids: pa.ChunkedArray | pa.Array, path: Path, column: str, lines, what: str = "item") -> None:
    """A DataError naming two lines when an id occurs twice (an item described twice)."""
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if len(pc.unique(ids)) == len(ids):
        return
    codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    ordered = codes[order]
    repeat = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1
    second = order[repeat].min()  # the earliest row that repeats an id
    first = int(np.flatnonzero(codes == codes[second])[0])
    n_ids = len(np.unique(ordered[repeat]))
    raise DataError(
        f"{path}: lines {_line(lines, first)} and {_line(lines, second)} both describe {what} {ids[int(second)].as_py()!r} "
        f"(column `{column}`; {n_ids} {what} id(s) occur more than once). Keep one line per {what}."
    )


def csv_lines(data: bytes, has_header: bool = True):
    """`lines(rows)` for a delimited file read with read_delimited (computed when first asked)."""
    cache: list[np.ndarray] = []

    def lines(rows: np.ndarray) -> np.ndarray:
        if not cache:
            cache.append(line_numbers(data, has_header))
        return cache[0][np.asarray(rows)]

    return lines
