"""Amazon review data (McAuley et al.): the 2014 and the 2018 releases.

2014 (http://jmcauley.ucsd.edu/data/amazon/, e.g. `reviews_Office_Products_5.json.gz` and
`meta_Office_Products.json.gz`):
    reviews_*.json[.gz]  one JSON object per line: reviewerID, asin, unixReviewTime, ...
    meta_*.json[.gz]     one Python dict literal per line (single quotes, so not JSON): asin,
                         title, brand, categories (a list of category paths, each a list),
                         related {also_bought, also_viewed, bought_together, buy_after_viewing}.
2018 (https://nijianmo.github.io/amazon/, e.g. `Office_Products_5.json.gz` and
`meta_Office_Products.json.gz`):
    <name>.json[.gz]     reviews, JSON lines: reviewerID, asin, unixReviewTime, ...
    meta_*.json[.gz]     JSON lines: asin, title, brand, category (one path, a list),
                         also_buy, also_view, description (a list of strings).

Every review is an interaction. Items are the reviewed asins that have metadata, with
title, brand, category (the third level of the first category path, as the LRD reference
code takes it), leaf_categories (the last level of every path) and, for 2018, description.
also_bought/also_buy and also_viewed/also_view become item-item links between reviewed items.
"""

from __future__ import annotations

import ast
import dataclasses
import gzip
import html
import json
import logging
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pjson

from lrd.config.ingest import AttributeConfig, IngestConfig
from lrd.data.readers.base import LINKS_SCHEMA, UTF8_BOM, RawDataset, find_one, unix_seconds, unreadable
from lrd.errors import DataError

log = logging.getLogger(__name__)

REVIEW_SCHEMA = pa.schema([("reviewerID", pa.string()), ("asin", pa.string()), ("unixReviewTime", pa.int64())])
DESCRIPTION_CHARS = 300
# Finds a metadata line's asin without parsing the line: most metadata lines describe items
# nobody reviewed in the (5-core) review file, and parsing them is most of the reading time.
_ASIN = re.compile(r"""["']asin["']\s*:\s*["']([^"']*)["']""")


@dataclasses.dataclass
class ItemMeta:
    """One metadata record, the same for both releases."""

    asin: str
    title: str | None
    brand: str | None
    paths: list[list[str]]  # category paths, root first
    links: dict[str, list[str]]  # relation name -> tail asins
    description: str | None = None


@dataclasses.dataclass(frozen=True)
class Release:
    """What differs between the 2014 and the 2018 files."""

    reviews_patterns: list[str] | None  # None: any *.json[.gz] not named meta_*
    parse: Callable[[str], object]  # one metadata line -> its record
    line_kind: str  # what a metadata line is, for error messages
    to_meta: Callable[[dict], ItemMeta]
    with_description: bool


def read_amazon2014(folder: Path, cfg: IngestConfig) -> RawDataset:
    release = Release(
        reviews_patterns=["reviews_*.json.gz", "reviews_*.json"],
        parse=_python_literal,
        line_kind="a Python dict literal",
        to_meta=_meta_2014,
        with_description=False,
    )
    return _read(folder, "2014", release)


def read_amazon2018(folder: Path, cfg: IngestConfig) -> RawDataset:
    release = Release(
        reviews_patterns=None, parse=json.loads, line_kind="a JSON object", to_meta=_meta_2018, with_description=True
    )
    return _read(folder, "2018", release)


def _read(folder: Path, year: str, release: Release) -> RawDataset:
    if release.reviews_patterns:
        reviews_path = find_one(folder, release.reviews_patterns, f"Amazon {year} reviews (reviews_*.json[.gz])")
    else:
        reviews_path = _find_reviews_2018(folder)
    meta_path = find_one(folder, ["meta_*.json.gz", "meta_*.json"], f"Amazon {year} metadata (meta_*.json[.gz])")
    interactions = read_reviews(reviews_path)
    reviewed = set(pc.unique(interactions.column("item")).to_pylist())
    metas = [release.to_meta(r) for r in read_metadata(meta_path, reviewed, release.parse, release.line_kind)]
    if not metas:
        raise DataError(
            f"{meta_path}: none of the {len(reviewed)} items reviewed in {reviews_path.name} has a metadata line. "
            "Use the metadata file of the same category as the reviews."
        )
    described = pa.array([m.asin for m in metas], pa.string())
    keep = pc.is_in(interactions.column("item"), value_set=described)
    if pc.all(keep).as_py() is False:
        # An item without a metadata line has no text for the LLM; its reviews go before the k-core.
        missing = len(reviewed) - len(described)
        log.warning("%s: %d reviewed items have no metadata line; their %d reviews are left out",
                    meta_path, missing, interactions.num_rows - pc.sum(keep).as_py())
        interactions = interactions.filter(keep)
    return RawDataset(
        interactions=interactions,
        items=_items_table(metas, release.with_description),
        links=_links_table(metas, reviewed),
        attributes={"category": AttributeConfig(), "brand": AttributeConfig()},
        # The LRD reference's item text: title, category, brand.
        text_template="{title}[. Category: {leaf_categories}][. Brand: {brand}]",
        # The reference's Amazon models use the also_bought / also_viewed lists too.
        model_relations=("attribute", "item-item"),
        files={"interactions": reviews_path, "items": meta_path},
    )


def _find_reviews_2018(folder: Path) -> Path:
    """The one `*.json[.gz]` file that is not metadata (2018 review files carry no prefix)."""
    hits = sorted(
        p for p in folder.rglob("*.json*")
        if p.is_file() and p.name.endswith((".json", ".json.gz")) and not p.name.startswith("meta_")
    )
    if len(hits) > 1:
        raise DataError(
            f"{folder}: found several Amazon 2018 review files ({', '.join(str(h) for h in hits[:4])}); "
            "keep exactly one in the dataset folder"
        )
    if not hits:
        raise DataError(
            f"{folder}: no Amazon 2018 reviews file (looked for *.json[.gz] not named meta_*); "
            "check the dataset's `format` and `source` in params.yaml"
        )
    return hits[0]


# --------------------------------------------------------------------------------------------
# reviews


def read_reviews(path: Path) -> pa.Table:
    """user, item, timestamp (unix seconds) from a JSON-lines review file (gzip recognised by its .gz name)."""
    options = pjson.ParseOptions(explicit_schema=REVIEW_SCHEMA, unexpected_field_behavior="ignore")
    try:
        table = pjson.read_json(_stream(path), read_options=pjson.ReadOptions(block_size=1 << 24), parse_options=options)
        table.validate(full=True)  # the JSON reader lets bad UTF-8 through into strings
    except (pa.ArrowInvalid, OSError, EOFError, zlib.error) as exc:
        raise DataError(_first_bad_review(path) or f"{path}: cannot read the reviews ({exc})") from None
    if any(table.column(name).null_count for name in REVIEW_SCHEMA.names) or any(
        pc.any(pc.equal(pc.utf8_trim_whitespace(table.column(name)), "")).as_py() for name in ("reviewerID", "asin")
    ):  # a field missing, null or blank somewhere
        raise DataError(_first_bad_review(path) or f"{path}: some reviews lack {', '.join(REVIEW_SCHEMA.names)}")
    seconds, order = unix_seconds(table.column("unixReviewTime"), path, "unixReviewTime", lambda rows: _review_lines(path, rows))
    interactions = pa.table({"user": table.column("reviewerID"), "item": table.column("asin"), "timestamp": seconds})
    return interactions if order is None else interactions.take(pa.array(order))


def _stream(path: Path) -> pa.NativeFile:
    """The file as pyarrow reads it (decompressing .gz natively), past a UTF-8 byte-order mark."""
    stream = pa.input_stream(str(path))  # compression detected from the name
    if stream.read(len(UTF8_BOM)) != UTF8_BOM:
        stream.close()
        stream = pa.input_stream(str(path))
    return stream


def _review_lines(path: Path, rows: np.ndarray) -> np.ndarray:
    """File lines of review rows: pyarrow skips blank lines (a Python pass, on error only)."""
    nonblank = [n for n, line in _lines(path) if line.strip()]
    return np.asarray(nonblank)[np.asarray(rows)]


def _first_bad_review(path: Path) -> str | None:
    """The first line pyarrow could not read, explained (a Python pass, on error only)."""
    expected = {"reviewerID": (str, "a string"), "asin": (str, "a string"), "unixReviewTime": (int, "an integer unix time")}
    for n, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            return f"{path}: line {n} is not valid JSON ({exc.msg}, column {exc.colno}). Fix or remove that line."
        except RecursionError:
            return f"{path}: line {n} is nested too deeply to be a review. Fix or remove that line."
        if not isinstance(record, dict):
            return f"{path}: line {n} is not a JSON object. Fix or remove that line."
        for field, (kind, what) in expected.items():
            if field not in record:
                return (
                    f"{path}: line {n}: no field `{field}`; the line has {', '.join(map(str, record)) or 'no fields'}. "
                    "Use an Amazon review file (or the `format` that matches this one)."
                )
            value = record[field]
            if not isinstance(value, kind) or isinstance(value, bool):
                return f"{path}: line {n}: field `{field}` is {value!r}, not {what}. Fix or remove that line."
            if kind is str and not value.strip():
                return f"{path}: line {n}: field `{field}` is empty. Fill it in or remove that line."
            if kind is int and not -(2**63) <= value < 2**63:
                return f"{path}: line {n}: field `{field}` is {value}, out of range for a unix time. Fix or remove that line."
    return None


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, gzipped or not; bad UTF-8 or gzip data is a DataError."""
    # Decoded line by line (not through a text wrapper, which decodes ahead) so the error names the line.
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")) as f:
            for n, raw in enumerate(f, start=1):
                if n == 1 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM):]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(f"{path}: line {n}: not UTF-8 text ({exc.reason} at byte {exc.start}). Fix the file's encoding.") from None
                yield n, line
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(unreadable(path, exc)) from None


# --------------------------------------------------------------------------------------------
# metadata


def _python_literal(line: str) -> object:
    # literal_eval builds only literals, so a crafted metadata line cannot run code (eval could).
    return ast.literal_eval(line)


def read_metadata(path: Path, reviewed: set[str], parse: Callable[[str], object], line_kind: str) -> list[dict]:
    """The metadata records of reviewed asins, first record per asin, in file order.

    Lines whose asin is not reviewed are skipped unparsed, so only a bad line of a reviewed
    item (or one without a recognisable asin) is an error.
    """
    records: dict[str, dict] = {}
    for n, line in _lines(path):
        found = _ASIN.search(line)
        if not line.strip() or (found and found.group(1) not in reviewed):
            continue
        record = _parse_line(path, n, line, parse, line_kind)
        asin = record["asin"]
        if asin in reviewed and asin not in records:
            records[asin] = record
    return list(records.values())


def _parse_line(path: Path, n: int, line: str, parse: Callable[[str], object], line_kind: str) -> dict:
    try:
        record = parse(line.rstrip("\r\n"))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        # JSONDecodeError and SyntaxError say what is wrong; literal_eval's ValueError names an AST node.
        reason = getattr(exc, "msg", None)
        if not reason:
            reason = "it holds an expression, not only values" if isinstance(exc, ValueError) else type(exc).__name__
        column = getattr(exc, "colno", None) or getattr(exc, "offset", None)
        reason += f"; column {column}" if column else ""
        raise DataError(f"{path}: line {n} is not {line_kind} ({reason}). Fix or remove that line.") from None
    if not isinstance(record, dict) or not isinstance(record.get("asin"), str):
        raise DataError(f"{path}: line {n} is not a record with a string `asin`. Fix or remove that line.")
    return record


def _meta_2014(record: dict) -> ItemMeta:
    related = record.get("related") if isinstance(record.get("related"), dict) else {}
    return ItemMeta(
        asin=record["asin"],
        title=_clean(record.get("title")),
        brand=_clean(record.get("brand")),
        paths=_paths(record.get("categories")),
        links={"also_bought": _ids(related.get("also_bought")), "also_viewed": _ids(related.get("also_viewed"))},
    )


def _meta_2018(record: dict) -> ItemMeta:
    description = record.get("description")
    if isinstance(description, list):
        description = description[0] if description else None
    description = _clean(description, quotes=False)
    return ItemMeta(
        asin=record["asin"],
        title=_clean(record.get("title")),
        brand=_clean(record.get("brand")),
        paths=_paths([record.get("category")]),
        links={"also_bought": _ids(record.get("also_buy")), "also_viewed": _ids(record.get("also_view"))},
        description=description[:DESCRIPTION_CHARS] if description else None,
    )


def _clean(value: object, quotes: bool = True) -> str | None:
    """HTML entities decoded, double quotes (as the reference) and line breaks dropped, spaces collapsed."""
    if not isinstance(value, str):
        return None
    text = html.unescape(value)
    if quotes:
        text = text.replace('"', "")
    return " ".join(text.split()) or None


def _paths(value: object) -> list[list[str]]:
    if not isinstance(value, list):
        return []
    paths = []
    for path in value:
        if isinstance(path, list):
            levels = [c for c in (_clean(level, quotes=False) for level in path) if c]
            if levels:
                paths.append(levels)
    return paths


def _ids(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _items_table(metas: list[ItemMeta], with_description: bool) -> pa.Table:
    columns = {
        "raw_id": pa.array([m.asin for m in metas], pa.string()),
        "title": pa.array([m.title for m in metas], pa.string()),
        "brand": pa.array([m.brand for m in metas], pa.string()),
        # The LRD reference's category: third level of the first path, when it has one.
        "category": pa.array([m.paths[0][2] if m.paths and len(m.paths[0]) > 2 else None for m in metas], pa.string()),
        "leaf_categories": pa.array([list(dict.fromkeys(p[-1] for p in m.paths)) for m in metas], pa.list_(pa.string())),
    }
    if with_description:
        columns["description"] = pa.array([m.description for m in metas], pa.string())
    return pa.table(columns)


def _links_table(metas: list[ItemMeta], reviewed: set[str]) -> pa.Table:
    """Item-item links whose tail is reviewed too (heads are: only their metadata is kept)."""
    heads, relations, tails = [], [], []
    for m in metas:
        for relation, targets in m.links.items():
            kept = [t for t in targets if t in reviewed]
            heads += [m.asin] * len(kept)
            relations += [relation] * len(kept)
            tails += kept
    return pa.table([pa.array(heads, pa.string()), pa.array(relations, pa.string()), pa.array(tails, pa.string())], schema=LINKS_SCHEMA)
