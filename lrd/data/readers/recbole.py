"""RecBole atomic files: `<name>.inter`, `.item`, and optionally `.kg` + `.link`.

Headers carry types (`item_id:token`, `class:token_seq`); `token_seq` fields are
space-separated. See https://recbole.io/docs/user_guide/data/atomic_files.html.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.config.ingest import AttributeConfig, IngestConfig
from lrd.data.readers.base import (
    LINKS_SCHEMA, RESERVED_ITEM_COLUMNS, SHARED_SCHEMA, YEAR_EDGES, RawDataset, attribute_name, csv_lines, duplicate_ids, find_one,
    first_line, read_bytes, read_delimited, unix_seconds,
)
from lrd.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# RecBole's field names -> ours, where they mean the same thing.
_ITEM_ALIASES = {"movie_title": "title", "item_name": "title", "release_year": "year", "class": "genres"}
_RESERVED = tuple(c for c in RESERVED_ITEM_COLUMNS if c != "title")  # a .item file's title is the title
_TEXT_SEQ = {"title"}  # token_seq fields that are really one string split on spaces
# Item text by default: the title, then whichever of these columns the .item file has.
_TEMPLATE_PARTS = (("year", "[ ({year})]"), ("genres", "[. Genres: {genres}]"), ("categories", "[. Categories: {categories}]"),
                   ("brand", "[. Brand: {brand}]"))
# The knowledge-graph relations used by default (those of RecBole's MovieLens KG), under our names.
FREEBASE_FILM = {"film.film.directed_by": "director", "film.film.written_by": "writer", "film.film.produced_by": "producer",
                 "film.film.actor": "actor", "film.film.sequel": "sequel", "film.film.prequel": "prequel"}


def _header(path: Path, data: bytes) -> tuple[list[str], dict[str, str]]:
    if not data.strip():
        raise DataError(f"{path}: the file is empty. Check the download or the source.")
    typed = first_line(path, data).split("\t")
    other = next((d for d in (",", ";", "|", " ") if len(typed) == 1 and d in typed[0]), None)
    if other:  # read as one field, `item_id:token,title:token` would pass for `item_id`
        raise DataError(f"{path}: line 1 reads as one field split by {other!r}: RecBole files are separated by tabs. "
                        "Convert the separators.")
    return typed, {t: t.split(":", 1)[0] for t in typed}


def read_recbole(folder: Path, cfg: IngestConfig) -> RawDataset:
    inter_path = find_one(folder, ["*.inter"], "RecBole interactions (.inter)")
    item_path = find_one(folder, ["*.item"], "RecBole items (.item)")
    data = read_bytes(inter_path)
    typed, rename = _header(inter_path, data)
    inter = read_delimited(
        inter_path,
        {"user_id": pa.string(), "item_id": pa.string(), "timestamp": pa.float64()},
        data=data,
        rename=rename,
        required=("user_id", "item_id", "timestamp"),
    )
    timestamp_column = next((t for t in typed if rename[t] == "timestamp"), "timestamp")
    seconds, order = unix_seconds(inter.column("timestamp"), inter_path, timestamp_column, csv_lines(data))
    interactions = pa.table({"user": inter.column("user_id"), "item": inter.column("item_id"), "timestamp": seconds})
    if order is not None:
        interactions = interactions.take(pa.array(order))
    items = _read_items(item_path)
    dataset = RawDataset(
        interactions=interactions,
        items=items,
        attributes={c: AttributeConfig() for c in ("genres", "categories", "brand") if c in items.column_names},
        text_template=_default_template(items.column_names),
        files={"interactions": inter_path, "items": item_path},
    )
    if "year" in items.column_names:
        dataset.attributes["year"] = AttributeConfig(bucket_edges=YEAR_EDGES)
    if cfg.kg_relations != {}:  # null: the format's default, the Freebase film relations the files have
        needed = bool(cfg.kg_relations)
        kg_path = find_one(folder, ["*.kg"], "RecBole knowledge graph (.kg)", required=needed)
        link_path = find_one(folder, ["*.link"], "RecBole item-entity links (.link)", required=needed)
        if kg_path is not None and link_path is not None:
            dataset.links, dataset.shared = _read_kg(kg_path, link_path, cfg.kg_relations, items)
            dataset.files.update(kg=kg_path, link=link_path)
    return dataset


def _default_template(columns: list[str]) -> str:
    """"{title}[ ({year})][. Genres: {genres}]" and so on, for the columns this .item file has."""
    parts = ["{title}"]
    parts += [part for column, part in _TEMPLATE_PARTS if column in columns]
    return "".join(parts)


def _read_items(path: Path) -> pa.Table:
    data = read_bytes(path)
    typed, rename = _header(path, data)
    if "item_id" not in rename.values():
        raise DataError(f"{path}: missing column item_id; the header has {', '.join(typed)}")
    table = read_delimited(path, {rename[t]: pa.string() for t in typed}, data=data, rename=rename, required=("item_id",))
    item_column = next(t for t in typed if rename[t] == "item_id")
    duplicate_ids(table.column("item_id"), path, item_column, csv_lines(data))
    columns = {"raw_id": table.column("item_id")}
    for t in typed:
        name = rename[t]
        if name == "item_id":
            continue
        ours = _ITEM_ALIASES.get(name, name)
        col = table.column(name)
        if t.endswith(":token_seq") and ours not in _TEXT_SEQ:
            trimmed = pc.utf8_trim_whitespace(col)
            col = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.list_(pa.string())), pc.split_pattern_regex(trimmed, r"\s+"))
        elif t.endswith(":float") or ours == "year":
            col = pc.cast(pc.if_else(pc.match_substring_regex(col, r"^-?\d{1,15}(\.\d*)?$"), col, None), pa.float64())
            if ours == "year":
                # A year outside 1..9999 is no year (and would not fit the int32 column).
                col = pc.cast(pc.floor(pc.if_else(pc.and_(pc.greater_equal(col, 1), pc.less_equal(col, 9999)), col, None)), pa.int32())
        # A `raw_id` or `text` field, or a second title, must not replace the item's own.
        columns[attribute_name(ours, columns, path, t, reserved=_RESERVED)] = col
    if "title" not in columns:
        columns["title"] = pa.nulls(table.num_rows, pa.string())
    return pa.table(columns)


def _read_kg(kg_path: Path, link_path: Path, wanted: dict[str, str] | None, items: pa.Table) -> tuple[pa.Table, pa.Table]:
    kg_data = read_bytes(kg_path)
    _, kg_rename = _header(kg_path, kg_data)
    kg = read_delimited(
        kg_path, {"head_id": pa.string(), "relation_id": pa.string(), "tail_id": pa.string()}, data=kg_data, rename=kg_rename
    )
    link_data = read_bytes(link_path)
    _, link_rename = _header(link_path, link_data)
    link = read_delimited(link_path, {"item_id": pa.string(), "entity_id": pa.string()}, data=link_data, rename=link_rename)

    known = pc.is_in(link.column("item_id"), value_set=items.column("raw_id"))
    if pc.all(known).as_py() is False:  # (null for an empty .link file)
        bad = pc.filter(link.column("item_id"), pc.invert(known))
        line = csv_lines(link_data)(np.flatnonzero(~known.to_numpy(zero_copy_only=False))[:1])[0]
        raise DataError(
            f"{link_path}: line {line}: item {bad[0].as_py()!r} is not in {items.num_rows} items of the .item file "
            f"({bad.length()} such rows). Remove those rows or use the matching .item file."
        )
    present = set(pc.unique(kg.column("relation_id")).to_pylist())
    if wanted is None:
        wanted = {k: v for k, v in FREEBASE_FILM.items() if k in present}
        if present - set(wanted):
            log.info("%s: relations %s are not used by default; list them in `ingest.kg_relations` to use them",
                     kg_path, ", ".join(sorted(present - set(wanted))[:10]))
    unknown = sorted(set(wanted) - present)
    if unknown:
        raise ConfigError(
            f"params.yaml: `ingest.kg_relations` names {', '.join(unknown)}, which {kg_path} does not have; "
            f"it has: {', '.join(sorted(present))}"
        )
    kg = kg.filter(pc.is_in(kg.column("relation_id"), value_set=pa.array(list(wanted))))
    entities = link.column("entity_id")
    head_pos = pc.index_in(kg.column("head_id"), value_set=entities)
    tail_pos = pc.index_in(kg.column("tail_id"), value_set=entities)
    kg = kg.append_column("head_item", pc.take(link.column("item_id"), head_pos))
    kg = kg.append_column("tail_item", pc.take(link.column("item_id"), tail_pos))
    kg = kg.filter(pc.is_valid(kg.column("head_item")))
    ours = pc.take(pa.array(list(wanted.values()), pa.string()), pc.index_in(kg.column("relation_id"), value_set=pa.array(list(wanted))))
    kg = kg.set_column(kg.schema.get_field_index("relation_id"), "relation_id", ours)

    # A relation whose tails are items (sequel, prequel) links items directly; any other
    # (director, actor) relates the items that share a tail.
    is_item_relation = pc.is_valid(kg.column("tail_item"))
    item_relations = set(pc.unique(pc.filter(kg.column("relation_id"), is_item_relation)).to_pylist())
    direct = pc.is_in(kg.column("relation_id"), value_set=pa.array(sorted(item_relations), pa.string()))
    link_rows = kg.filter(pc.and_(direct, is_item_relation))
    shared_rows = kg.filter(pc.invert(direct))
    links = pa.table(
        [link_rows.column("head_item"), link_rows.column("relation_id"), link_rows.column("tail_item")], schema=LINKS_SCHEMA
    )
    shared = pa.table(
        [shared_rows.column("head_item"), shared_rows.column("relation_id"), shared_rows.column("tail_id")], schema=SHARED_SCHEMA
    )
    return links, shared
