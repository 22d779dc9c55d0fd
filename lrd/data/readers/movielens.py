"""GroupLens MovieLens files, as extracted from the official zips (possibly in a subfolder).

ML-100K (`u.data`, `u.item`, `u.genre`):
    u.data   user \\t item \\t rating \\t unix time, no header.
    u.item   id|title|release date (01-Jan-1995)|video release|IMDb URL|one 0/1 flag per genre,
             ISO-8859-1, no header.
    u.genre  name|index, one line per genre flag column of u.item, in column order.
ML-1M (`ratings.dat`, `movies.dat`), ISO-8859-1, no header:
    ratings.dat  UserID::MovieID::Rating::Timestamp
    movies.dat   MovieID::Title::Genres, genres separated by "|".

Every rating is an interaction (implicit feedback). Items get the title without its trailing
"(1995)", the year it held (ML-100K: the release date's year when the title has none) and
the list of genre names. Genre names come from u.genre, so they are right: the LRD
reference code shifted them by one column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lrd.config.ingest import AttributeConfig, IngestConfig
from lrd.data.readers.base import (
    YEAR_EDGES, RawDataset, csv_lines, duplicate_ids, find_one, read_bytes, read_delimited, unix_seconds,
)
from lrd.errors import DataError

LATIN1 = "ISO-8859-1"
RATING_COLUMNS = ["user", "item", "rating", "timestamp"]
RATING_TYPES = {"user": pa.string(), "item": pa.string(), "timestamp": pa.int64()}
# "Toy Story (1995)" -> ("Toy Story", "1995"); titles with other parentheses keep them.
_TITLE_YEAR = r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$"


def read_movielens(folder: Path, cfg: IngestConfig) -> RawDataset:
    ratings_path = find_one(folder, ["u.data", "ratings.dat"], "MovieLens ratings (u.data or ratings.dat)")
    if ratings_path.name == "u.data":
        data = read_bytes(ratings_path)
        ratings = read_delimited(ratings_path, RATING_TYPES, header=RATING_COLUMNS, data=data, required=RATING_TYPES)
        items_path = find_one(folder, ["u.item"], "MovieLens-100K movies (u.item)")
        genre_path = find_one(folder, ["u.genre"], "MovieLens-100K genre names (u.genre)")
        items = _read_u_item(items_path, _read_u_genre(genre_path))
    else:
        data = _double_colon_bytes(ratings_path)
        ratings = read_delimited(ratings_path, RATING_TYPES, header=RATING_COLUMNS, data=data, required=RATING_TYPES)
        items_path = find_one(folder, ["movies.dat"], "MovieLens movies (movies.dat)")
        items = _read_movies_dat(items_path)
    seconds, order = unix_seconds(ratings.column("timestamp"), ratings_path, "timestamp", csv_lines(data, has_header=False))
    interactions = pa.table({"user": ratings.column("user"), "item": ratings.column("item"), "timestamp": seconds})
    return RawDataset(
        interactions=interactions if order is None else interactions.take(pa.array(order)),
        items=items,
        attributes={"genres": AttributeConfig(), "year": AttributeConfig(bucket_edges=YEAR_EDGES)},
        text_template="{title}[ ({year})][. Genres: {genres}]",
        files={"interactions": ratings_path, "items": items_path},
    )


def _double_colon_bytes(path: Path) -> bytes:
    """A `::`-separated file as tab-separated bytes: pyarrow's CSV reader takes one-character delimiters only."""
    data = read_bytes(path)
    if b"\t" in data:
        line = data[: data.index(b"\t")].count(b"\n") + 1
        raise DataError(f"{path}: line {line} holds a tab, which a `::`-separated MovieLens file should not. Remove it.")
    return data.replace(b"::", b"\t")


def _read_u_genre(path: Path) -> list[str]:
    """Genre names in the order of u.item's flag columns."""
    by_index: dict[int, str] = {}
    for n, line in enumerate(read_bytes(path).decode(LATIN1).splitlines(), start=1):
        if not line.strip():
            continue
        name, _, index = line.rpartition("|")
        if not name or not index.strip().isdigit():
            raise DataError(f"{path}: line {n}: expected `name|index`, got {line!r}. Fix that line.")
        by_index[int(index)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"{path}: genre indices are {sorted(by_index)}; expected 0..{len(by_index) - 1}, one line each")
    return [by_index[i] for i in range(len(by_index))]


def _read_u_item(path: Path, genres: list[str]) -> pa.Table:
    flags = [f"genre_{i}" for i in range(len(genres))]  # placeholders: genre names need not be valid or unique columns
    header = ["raw_id", "title", "release_date", "video_release_date", "imdb_url", *flags]
    data = read_bytes(path)
    table = read_delimited(
        path,
        {"raw_id": pa.string(), "title": pa.string(), "release_date": pa.string(), **{f: pa.int8() for f in flags}},
        header=header,
        delimiter="|",
        encoding=LATIN1,
        data=data,
        required=("raw_id",),
    )
    duplicate_ids(table.column("raw_id"), path, "movie id", csv_lines(data, has_header=False), what="movie")
    # An empty flag is "not this genre".
    matrix = np.stack([pc.fill_null(table.column(f), 0).to_numpy() for f in flags], axis=1) if flags else np.zeros((table.num_rows, 0), np.int8)
    rows, cols = np.nonzero(matrix)  # row-major: each movie's genres in u.genre order
    offsets = np.r_[0, np.cumsum(np.bincount(rows, minlength=table.num_rows))].astype(np.int32)
    genre_lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.asarray(genres, dtype=object)[cols], pa.string()))
    release_year = pc.struct_field(pc.extract_regex(table.column("release_date"), r"(?P<year>\d{4})\s*$"), "year")
    return _items(table.column("raw_id"), table.column("title"), genre_lists, fallback_year=release_year)


def _read_movies_dat(path: Path) -> pa.Table:
    data = _double_colon_bytes(path)
    table = read_delimited(
        path, {"raw_id": pa.string(), "title": pa.string(), "genres": pa.string()},
        header=["raw_id", "title", "genres"], data=data, encoding=LATIN1, required=("raw_id",),
    )
    duplicate_ids(table.column("raw_id"), path, "MovieID", csv_lines(data, has_header=False), what="movie")
    genres = table.column("genres").combine_chunks()
    # ML-10M/20M write "(no genres listed)"; an empty field means the same.
    none = pc.or_(pc.equal(genres, ""), pc.equal(genres, "(no genres listed)"))
    genre_lists = pc.if_else(none, pa.scalar([], pa.list_(pa.string())), pc.split_pattern(genres, "|"))
    return _items(table.column("raw_id"), table.column("title"), genre_lists)


def _items(raw_id, full_title, genres, fallback_year=None) -> pa.Table:
    """The items table: title without its trailing year, year (int32, null if unknown), genres."""
    full_title = pc.utf8_trim_whitespace(full_title)
    parts = pc.extract_regex(full_title, _TITLE_YEAR)  # null where the title has no year
    has_year = pc.is_valid(parts)
    title = pc.if_else(has_year, pc.struct_field(parts, "title"), full_title)
    fallback = fallback_year if fallback_year is not None else pa.scalar(None, pa.string())
    year = pc.if_else(has_year, pc.struct_field(parts, "year"), fallback)
    return pa.table(
        {
            "raw_id": raw_id,
            "title": pc.if_else(pc.equal(title, ""), pa.scalar(None, pa.string()), title),
            "year": pc.cast(year, pa.int32()),  # four digits: always fits
            "genres": genres,
        }
    )
