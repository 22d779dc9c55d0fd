"""What every reader returns, and the careful file reading they share."""

from __future__ import annotations

import dataclasses
import gzip
import io
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from lrd.config import AttributeConfig
from lrd.errors import DataError

LINKS_SCHEMA = pa.schema([("head", pa.string()), ("relation", pa.string()), ("tail", pa.string())])
SHARED_SCHEMA = pa.schema([("raw_id", pa.string()), ("relation", pa.string()), ("value", pa.string())])


@dataclasses.dataclass
class RawDataset:
    """A dataset as its files describe it, with raw (string) ids.

    interactions: user, item (string), timestamp (int64); plus `split` (train/dev/test) when
        the dataset comes already split.
    items: raw_id, title, and descriptive columns for text templates and attributes.
    links: item-item triples (head, relation, tail) between raw item ids.
    shared: (raw_id, relation, value): items sharing a value get a `shares_<relation>` relation.
    candidates: for pre-split datasets, the stored evaluation candidates
        (user, split, target, negatives: list of raw item ids).
    attributes: the item columns that become attribute relations unless params.yaml says otherwise.
    keep_ids: ids are already 1..n integers and must be kept as they are (pre-split datasets).
    """

    interactions: pa.Table
    items: pa.Table
    links: pa.Table = dataclasses.field(default_factory=LINKS_SCHEMA.empty_table)
    shared: pa.Table = dataclasses.field(default_factory=SHARED_SCHEMA.empty_table)
    candidates: pa.Table | None = None
    attributes: dict[str, AttributeConfig] = dataclasses.field(default_factory=dict)
    keep_ids: bool = False
    files: dict[str, Path] = dataclasses.field(default_factory=dict)


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
    if required:
        raise DataError(f"{folder}: no {what} file (looked for {', '.join(patterns)}); check `dataset.format` and the source")
    return None


def open_text(path: Path, encoding: str = "utf-8") -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, errors="strict")
    return open(path, encoding=encoding)


def read_bytes(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()



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
) -> pa.Table:
    """Read a delimited text file with explicit column types and errors that name the line.

    `column_types` lists the columns the caller needs; a missing or misnamed column is an
    error listing the columns the file has. `header` gives the names when the file has none.
    `rename` maps names as written in the file to the names used in `column_types`.
    """
    rename = rename or {}
    source = io.BytesIO(data if data is not None else read_bytes(path))
    read_opts = pcsv.ReadOptions(column_names=header, encoding=encoding, block_size=1 << 24)
    parse_opts = pcsv.ParseOptions(delimiter=delimiter, quote_char='"' if quoting else False, newlines_in_values=False)
    try:
        first_line = source.getvalue().split(b"\n", 1)[0] + b"\n"
        names = pcsv.read_csv(io.BytesIO(first_line), read_options=read_opts, parse_options=parse_opts).schema.names
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: cannot read the header ({exc})") from None
    file_for_ours = {rename.get(n, n): n for n in names}
    missing = [c for c in column_types if c not in file_for_ours]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has {', '.join(names)}. "
            "Rename the header or choose the matching `dataset.format`."
        )
    convert = pcsv.ConvertOptions(
        column_types={file_for_ours[c]: t for c, t in column_types.items()},
        include_columns=[file_for_ours[c] for c in column_types],
        strings_can_be_null=False,
    )
    try:
        table = pcsv.read_csv(source, read_options=read_opts, parse_options=parse_opts, convert_options=convert)
    except pa.ArrowInvalid as exc:
        raise DataError(_explain(path, source.getvalue(), str(exc), names, header is None, encoding, delimiter)) from None
    return table.rename_columns([rename.get(n, n) for n in table.column_names])


_CONVERSION = re.compile(r"column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'$", re.S)
_PARSE = re.compile(r"CSV parse error: (.*?): (.*)$", re.S)


def _explain(path: Path, data: bytes, message: str, names: list[str], has_header: bool, encoding: str, delimiter: str) -> str:
    """Turn pyarrow's message into one naming the line and column (searched only on error)."""
    text = data.decode("utf-8" if encoding == "utf8" else encoding, errors="replace")
    lines = text.splitlines()
    first = 1 if has_header else 0
    conv = _CONVERSION.search(message)
    if conv:
        col, kind, bad = int(conv.group(1)), conv.group(2), conv.group(3)
        column = names[col] if col < len(names) else f"#{col + 1}"
        for n, line in enumerate(lines[first:], start=first + 1):
            fields = line.split(delimiter)
            if col < len(fields) and fields[col] == bad:
                return f"{path}: line {n}, column `{column}`: {bad!r} is not a valid {kind}. Fix or remove that line."
        return f"{path}: column `{column}`: {bad!r} is not a valid {kind}. Fix or remove that line."
    parse = _PARSE.search(message)
    if parse:
        problem, row = parse.group(1), parse.group(2).rstrip("\n")
        for n, line in enumerate(lines, start=1):
            if line == row:
                return f"{path}: line {n}: {problem}. Fix or remove that line."
        return f"{path}: {problem} (in the row {row!r}). Fix or remove that line."
    return f"{path}: {message}"
