"""The MovieLens, Amazon and ReChorus readers on tiny files written here, and their errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from lrd.config.ingest import AttributeConfig, IngestConfig
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.errors import DataError

ML_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
             "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]


def _cfg(**kw) -> IngestConfig:
    return IngestConfig(**{"seed": 0, "min_core": 1, "n_negatives": 2, **kw})


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def _items_by_id(table) -> dict[str, dict]:
    return {row["raw_id"]: row for row in table.to_pylist()}


# --------------------------------------------------------------------------------------------
# MovieLens


def _flags(*names: str) -> str:
    return "|".join("1" if g in names else "0" for g in ML_GENRES)


def write_ml100k(folder: Path) -> Path:
    """4 movies, 4 users who each rated 3 of them at increasing times, in `ml-100k/` as zipped."""
    root = folder / "ml-100k"
    _write(root / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(ML_GENRES)) + "\n")
    movies = [
        "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
        + _flags("Animation", "Children's", "Comedy"),
        f"2|Café au lait (Métisse) (1993)|01-Jan-1993||http://x|{_flags('Comedy')}",
        f"3|Nowhere Film|14-Mar-1997||http://x|{_flags('Drama', 'Sci-Fi')}",
        f"4|unknown||||{_flags('unknown')}",
    ]
    _write(root / "u.item", "\n".join(movies) + "\n", encoding="ISO-8859-1")
    seen = {1: (2, 3, 4), 2: (1, 2, 3), 3: (2, 3, 4), 4: (1, 2, 3)}
    ratings = [f"{u}\t{i}\t{(u + i) % 5 + 1}\t{880000000 + 10 * u + k}" for u, items in seen.items() for k, i in enumerate(items)]
    _write(root / "u.data", "\n".join(ratings) + "\n")
    return folder


def write_ml1m(folder: Path) -> Path:
    root = folder / "ml-1m"
    _write(root / "movies.dat", "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                                "2::Ça commence aujourd'hui (1999)::Drama\n"
                                "3::Untitled::\n"
                                "4::Heat (1995)::Action|Crime|Thriller\n", encoding="ISO-8859-1")
    seen = {1: (1, 2, 3), 2: (1, 2, 4), 3: (1, 3, 4)}  # every user leaves one movie for a negative
    rows = [f"{u}::{i}::4::{978300000 + 7 * u + i}" for u, items in seen.items() for i in items]
    _write(root / "ratings.dat", "\n".join(rows) + "\n")
    return folder


def test_movielens_100k_genre_names_titles_and_years(tmp_path):
    raw = read_dataset("movielens", write_ml100k(tmp_path), _cfg())
    items = _items_by_id(raw.items)
    # u.genre's names, not the reference code's shifted ones ("Children's, Comedy, Crime").
    assert items["1"]["genres"] == ["Animation", "Children's", "Comedy"]
    assert items["1"]["title"] == "Toy Story" and items["1"]["year"] == 1995
    assert items["2"]["title"] == "Café au lait (Métisse)" and items["2"]["year"] == 1993  # ISO-8859-1 decoded
    assert items["3"]["title"] == "Nowhere Film" and items["3"]["year"] == 1997  # from the release date
    assert items["4"]["title"] == "unknown" and items["4"]["year"] is None and items["4"]["genres"] == ["unknown"]
    assert str(raw.items.schema.field("year").type) == "int32"
    assert raw.interactions.column_names == ["user", "item", "timestamp"]
    assert raw.interactions.num_rows == 12
    assert raw.interactions.column("timestamp").type == "int64"
    assert raw.interactions.slice(0, 1).to_pylist() == [{"user": "1", "item": "2", "timestamp": 880000010}]
    assert raw.files["items"].name == "u.item" and set(raw.attributes) == {"genres", "year"}


def test_movielens_1m_ingest(tmp_path):
    cfg = _cfg(min_core=2, n_negatives=1, text_template="{title}[ ({year})][. Genres: {genres}]")
    raw = read_dataset("movielens", write_ml1m(tmp_path), cfg)
    items = _items_by_id(raw.items)
    assert items["2"]["title"] == "Ça commence aujourd'hui" and items["2"]["genres"] == ["Drama"]
    assert items["3"]["title"] == "Untitled" and items["3"]["year"] is None and items["3"]["genres"] == []
    result = ingest(raw, cfg)
    assert result.stats["users"] == 3 and result.stats["items"] == 4 and result.interactions.num_rows == 9
    assert result.stats["splits"] == {"train": 3, "dev": 3, "test": 3}
    texts = dict(zip(result.items.column("raw_id").to_pylist(), result.items.column("text").to_pylist()))
    assert texts == {
        "1": "Toy Story (1995). Genres: Animation, Children's, Comedy",
        "2": "Ça commence aujourd'hui (1999). Genres: Drama",
        "3": "Untitled",
        "4": "Heat (1995). Genres: Action, Crime, Thriller",
    }
    names = result.relation_types.column("name").to_pylist()
    assert "genres=Children's" in names and "year" in names


def test_movielens_missing_genre_file(tmp_path):
    write_ml100k(tmp_path)
    (tmp_path / "ml-100k" / "u.genre").unlink()
    with pytest.raises(DataError, match=r"no MovieLens-100K genre names \(u.genre\) file"):
        read_dataset("movielens", tmp_path, _cfg())


def test_movielens_bad_timestamp_names_the_line(tmp_path):
    write_ml1m(tmp_path)
    ratings = tmp_path / "ml-1m" / "ratings.dat"
    lines = ratings.read_text().splitlines()
    lines[3] = "2::1::4::yesterday"
    ratings.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"ratings\.dat: line 4, column `timestamp`: 'yesterday' is not an integer"):
        read_dataset("movielens", tmp_path, _cfg())


# --------------------------------------------------------------------------------------------
# Amazon

# (user, asin, day); every user leaves an item unreviewed, so each can get a negative.
REVIEWS = [("U1", "A1", 0), ("U1", "A2", 1), ("U1", "A3", 2), ("U2", "A1", 3), ("U2", "A2", 4), ("U2", "A4", 5),
           ("U3", "A1", 6), ("U3", "A3", 7), ("U3", "A4", 8), ("U4", "A2", 9), ("U4", "A3", 10)]


def _reviews(drop: str | None = None, **override) -> str:
    rows = [{"reviewerID": u, "asin": a, "reviewText": "fine", "overall": 4.0, "unixReviewTime": 1_300_000_000 + 86400 * d}
            for u, a, d in REVIEWS]
    rows[1].update(override)
    if drop:
        del rows[1][drop]
    return "".join(json.dumps(r) + "\n" for r in rows)


def write_amazon2014(folder: Path, meta_lines: list[str] | None = None, reviews: str | None = None) -> Path:
    _write(folder / "reviews_Office_Products_5.json.gz", reviews or _reviews())
    meta_lines = meta_lines or [
        repr({"asin": "A1", "title": "Pens &amp; \"Pencils\"\n Set", "brand": "Bic",
              "categories": [["Office Products", "Office & School Supplies", "Writing", "Pens"], ["Office Products", "Pens"]],
              "related": {"also_bought": ["A2", "ZZ", "A3"], "also_viewed": ["A3"], "bought_together": ["A2"]}}),
        repr({"asin": "ZZ", "title": "Not reviewed", "related": {"also_bought": ["A1"]}}),
        "{'asin': 'Z9', 'title': 'broken line of an item nobody reviewed'",
        repr({"asin": "A2", "title": "Stapler", "brand": "", "categories": [["Office Products", "Staplers"]],
              "related": {"also_viewed": ["A1"]}}),
        repr({"asin": "A3", "title": "Paper", "categories": [["Office Products", "Office & School Supplies", "Paper"]]}),
        repr({"asin": "A1", "title": "A later duplicate of A1"}),
        repr({"asin": "A4", "title": "Binder", "brand": "Avery"}),
    ]
    _write(folder / "meta_Office_Products.json", "\n".join(meta_lines) + "\n")
    return folder


def write_amazon2018(folder: Path, meta_lines: list[str] | None = None) -> Path:
    _write(folder / "Office_Products_5.json", _reviews())
    meta_lines = meta_lines or [
        json.dumps({"asin": "A1", "title": "Pens &amp; Pencils", "brand": "Bic",
                    "category": ["Office Products", "Office &amp; School Supplies", "Writing", "Pens"],
                    "description": ["Smooth   writing " + "x" * 400, "second part"], "also_buy": ["A2", "Q1"], "also_view": []}),
        json.dumps({"asin": "A2", "title": "Stapler", "category": [], "also_view": ["A1", "A3"]}),
        json.dumps({"asin": "A3", "title": "Paper", "brand": "Hammermill", "category": ["Office Products", "Paper"], "description": []}),
        json.dumps({"asin": "A4", "title": "Binder", "category": ["Office Products", "Office &amp; School Supplies", "Binders &amp; Accessories"]}),
    ]
    _write(folder / "meta_Office_Products.json.gz", "\n".join(meta_lines) + "\n")
    return folder


def test_amazon2014_reader(tmp_path):
    raw = read_dataset("amazon2014", write_amazon2014(tmp_path), _cfg())
    assert raw.interactions.num_rows == 11
    assert raw.interactions.slice(0, 1).to_pylist() == [{"user": "U1", "item": "A1", "timestamp": 1_300_000_000}]
    items = _items_by_id(raw.items)
    assert set(items) == {"A1", "A2", "A3", "A4"}  # ZZ is not reviewed; the first A1 record wins
    assert items["A1"] == {"raw_id": "A1", "title": "Pens & Pencils Set", "brand": "Bic", "category": "Writing",
                           "leaf_categories": ["Pens"]}
    assert items["A2"]["brand"] is None and items["A2"]["category"] is None and items["A2"]["leaf_categories"] == ["Staplers"]
    assert items["A3"]["category"] == "Paper" and items["A3"]["brand"] is None
    assert "description" not in raw.items.column_names
    assert sorted(tuple(r.values()) for r in raw.links.to_pylist()) == [
        ("A1", "also_bought", "A2"), ("A1", "also_bought", "A3"), ("A1", "also_viewed", "A3"), ("A2", "also_viewed", "A1"),
    ]
    assert set(raw.attributes) == {"category", "brand"}


def test_amazon2014_ingest(tmp_path):
    cfg = _cfg(min_core=2, n_negatives=1, text_template="{title}[. Category: {leaf_categories}][. Brand: {brand}]")
    result = ingest(read_dataset("amazon2014", write_amazon2014(tmp_path), cfg), cfg)
    assert result.stats["users"] == 4 and result.stats["items"] == 4 and result.interactions.num_rows == 11
    texts = dict(zip(result.items.column("raw_id").to_pylist(), result.items.column("text").to_pylist()))
    assert texts == {"A1": "Pens & Pencils Set. Category: Pens. Brand: Bic", "A2": "Stapler. Category: Staplers",
                     "A3": "Paper. Category: Paper", "A4": "Binder. Brand: Avery"}
    assert result.stats["relations"] == {"also_bought": 2, "also_viewed": 2, "category": 2, "brand": 2}


def test_amazon2018_reader(tmp_path):
    raw = read_dataset("amazon2018", write_amazon2018(tmp_path), _cfg())
    items = _items_by_id(raw.items)
    assert items["A1"]["category"] == "Writing" and items["A1"]["leaf_categories"] == ["Pens"]
    assert items["A4"]["category"] == "Binders & Accessories" == items["A4"]["leaf_categories"][0]  # entities decoded
    assert items["A1"]["description"] == ("Smooth writing " + "x" * 400)[:300]
    assert items["A2"]["category"] is None and items["A2"]["leaf_categories"] == [] and items["A2"]["description"] is None
    assert items["A3"]["description"] is None and items["A3"]["brand"] == "Hammermill"
    assert sorted(tuple(r.values()) for r in raw.links.to_pylist()) == [
        ("A1", "also_bought", "A2"), ("A2", "also_viewed", "A1"), ("A2", "also_viewed", "A3"),
    ]
    assert raw.files["interactions"].name == "Office_Products_5.json"


def test_amazon_reviews_of_items_without_metadata_are_left_out(tmp_path, caplog):
    lines = [repr({"asin": a, "title": t}) for a, t in [("A1", "Pens"), ("A2", "Stapler"), ("A3", "Paper")]]
    raw = read_dataset("amazon2014", write_amazon2014(tmp_path, meta_lines=lines), _cfg())
    assert set(raw.interactions.column("item").to_pylist()) == {"A1", "A2", "A3"}
    assert raw.interactions.num_rows == 9  # A4's two reviews are gone
    assert "1 reviewed items have no metadata line; their 2 reviews are left out" in caplog.text


def test_amazon_missing_metadata(tmp_path):
    write_amazon2014(tmp_path)
    (tmp_path / "meta_Office_Products.json").unlink()
    with pytest.raises(DataError, match=r"no Amazon 2014 metadata \(meta_\*\.json\[\.gz\]\) file"):
        read_dataset("amazon2014", tmp_path, _cfg())


def test_amazon_review_without_timestamp(tmp_path):
    write_amazon2014(tmp_path, reviews=_reviews(drop="unixReviewTime"))
    with pytest.raises(DataError, match=r"reviews_Office_Products_5\.json\.gz: line 2: no field `unixReviewTime`; "
                                        r"the line has reviewerID, asin, reviewText, overall"):
        read_dataset("amazon2014", tmp_path, _cfg())


def test_amazon_review_with_text_timestamp(tmp_path):
    write_amazon2014(tmp_path, reviews=_reviews(unixReviewTime="03 14, 2011"))
    with pytest.raises(DataError, match=r"json\.gz: line 2: field `unixReviewTime` is '03 14, 2011', not an integer"):
        read_dataset("amazon2014", tmp_path, _cfg())


@pytest.mark.parametrize("bad", ["code", "truncated"])
def test_amazon2014_unparseable_metadata_line(tmp_path, bad):
    marker = tmp_path / "evaluated"
    line = {"code": f"{{'asin': 'A2', 'title': __import__('pathlib').Path({str(marker)!r}).touch()}}",
            "truncated": "{'asin': 'A2', 'title': 'Stapler', 'categories': [['Office Products'"}[bad]
    write_amazon2014(tmp_path / "raw", meta_lines=[repr({"asin": "A1", "title": "ok"}), line])
    with pytest.raises(DataError, match=r"meta_Office_Products\.json: line 2 is not a Python dict literal"):
        read_dataset("amazon2014", tmp_path / "raw", _cfg())
    assert not marker.exists()  # the line was never run as code


def test_amazon2018_unparseable_metadata_line(tmp_path):
    lines = [json.dumps({"asin": "A1", "title": "ok"}), json.dumps({"asin": "A3"}), '{"asin": "A2", "title": "cut off']
    write_amazon2018(tmp_path, meta_lines=lines)
    with pytest.raises(DataError, match=r"meta_Office_Products\.json\.gz: line 3 is not a JSON object"):
        read_dataset("amazon2018", tmp_path, _cfg())


# --------------------------------------------------------------------------------------------
# ReChorus

TRAIN = [(1, 1, 100), (1, 2, 110), (2, 2, 105), (2, 3, 115), (3, 1, 101), (3, 4, 120)]
# Negatives are items the user never touched (in any split); with 6 items every row repeats one.
DEV = [(1, 3, 200, [5, 6, 5]), (2, 4, 201, [5, 6, 6]), (3, 5, 202, [2, 3, 2])]
TEST = [(1, 4, 300, [6, 5, 6]), (2, 1, 301, [6, 5, 5]), (3, 6, 302, [3, 2, 3])]


TEXT = "id\ttext\n1\tRed pen\n2\tStapler\n3\t\n5\tPaper\n"  # item 3's text is empty; 4, 6, 7 have none
FULL_TEXT = "".join(f"{i}\tItem {i}\n" for i in range(1, 8))


def write_rechorus(folder: Path, dev=DEV, meta_rows: list[str] | None = None, text: str | None = TEXT, train_header="user_id\titem_id\ttime") -> Path:
    _write(folder / "train.csv", train_header + "\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in TRAIN))
    for name, rows in (("dev", dev), ("test", TEST)):
        _write(folder / f"{name}.csv", "user_id\titem_id\ttime\tneg_items\n" + "".join(f"{u}\t{i}\t{t}\t{n}\n" for u, i, t, n in rows))
    meta_rows = meta_rows if meta_rows is not None else [
        "1\t1\t2\t[2, 3]\t[]", "2\t1\t0\t[1]\t[4]", "3\t2\t0\t[]\t[]", "4\t0\t2\t[]\t[1, 2]", "7\t2\t1\t[]\t[]",
    ]
    _write(folder / "item_meta.csv", "item_id\ti_category\ti_brand\tr_complement\tr_substitute\n" + "\n".join(meta_rows) + "\n")
    if text is not None:
        _write(folder / "item_text.csv", text)
    return folder


def test_rechorus_reader(tmp_path):
    raw = read_dataset("rechorus", write_rechorus(tmp_path), _cfg(n_negatives=3))
    assert raw.keep_ids
    assert raw.interactions.num_rows == 12
    assert raw.interactions.column("split").to_pylist() == ["train"] * 6 + ["dev"] * 3 + ["test"] * 3
    assert raw.interactions.slice(6, 1).to_pylist() == [{"user": 1, "item": 3, "timestamp": 200, "split": "dev"}]
    cand = raw.candidates
    assert cand.column("negatives").to_pylist() == [n for *_, n in DEV + TEST]
    assert cand.column("user").type == "int64" and cand.column("target").to_pylist() == [i for _, i, *_ in DEV + TEST]
    items = _items_by_id(raw.items)
    assert sorted(items, key=int) == ["1", "2", "3", "4", "5", "6", "7"]  # 5, 6 only in interactions; 7 only in item_meta
    assert items["1"] == {"item_id": 1, "raw_id": "1", "title": "Red pen", "category": "1", "brand": "2"}
    assert items["2"]["brand"] is None and items["3"]["title"] is None and items["6"]["category"] is None
    assert sorted(tuple(r.values()) for r in raw.links.to_pylist()) == [
        ("1", "complement", "2"), ("1", "complement", "3"), ("2", "complement", "1"),
        ("2", "substitute", "4"), ("4", "substitute", "1"), ("4", "substitute", "2"),
    ]
    assert set(raw.attributes) == {"category", "brand"}
    assert raw.files["candidates"].name == "test.csv" and raw.files["items"].name == "item_meta.csv"


def test_rechorus_ingest_keeps_split_and_negatives(tmp_path):
    cfg = _cfg(n_negatives=3, text_template="{title}")
    result = ingest(read_dataset("rechorus", write_rechorus(tmp_path, text=FULL_TEXT), cfg), cfg)
    stored = sorted(zip(*(result.interactions.column(c).to_pylist() for c in ("user", "item", "timestamp", "split"))))
    expected = [(u, i, t, "train") for u, i, t in TRAIN] + [(u, i, t, s) for s, rows in (("dev", DEV), ("test", TEST)) for u, i, t, _ in rows]
    assert stored == sorted(expected)
    cand = result.candidates
    got = list(zip(cand.column("user").to_pylist(), cand.column("split").to_pylist(), cand.column("target").to_pylist(),
                   cand.column("negatives").to_pylist()))
    assert got == [(u, s, i, n) for s, rows in (("dev", DEV), ("test", TEST)) for u, i, _, n in rows]
    assert result.items.column("item").to_pylist() == [1, 2, 3, 4, 5, 6]  # item 7 is in item_meta only
    assert result.items.column("text").to_pylist() == [f"Item {i}" for i in range(1, 7)]


def test_rechorus_text_file_without_header(tmp_path):
    folder = write_rechorus(tmp_path, text=None)
    _write(folder / "Office.text", "".join(f"{i}\tItem number {i}\n" for i in range(1, 7)))
    cfg = _cfg(n_negatives=3)
    result = ingest(read_dataset("rechorus", folder, cfg), cfg)
    assert result.items.column("text").to_pylist() == [f"Item number {i}" for i in range(1, 7)]
    assert result.stats["relations"]["complement"] == 3 and result.stats["relations"]["category"] == 3


def test_rechorus_missing_split_file(tmp_path):
    write_rechorus(tmp_path)
    (tmp_path / "dev.csv").unlink()
    with pytest.raises(DataError, match=r"no ReChorus dev split \(dev.csv\) file"):
        read_dataset("rechorus", tmp_path, _cfg(n_negatives=3))


def test_rechorus_misnamed_column(tmp_path):
    write_rechorus(tmp_path, train_header="user\titem_id\ttime")
    with pytest.raises(DataError, match=r"train\.csv: missing column\(s\) user_id; the file has user, item_id, time"):
        read_dataset("rechorus", tmp_path, _cfg(n_negatives=3))


def test_rechorus_negatives_of_wrong_length(tmp_path):
    dev = [DEV[0], (DEV[1][0], DEV[1][1], DEV[1][2], [1, 5]), DEV[2]]
    write_rechorus(tmp_path, dev=dev)
    with pytest.raises(DataError, match=r"dev\.csv: line 3: neg_items has 2 ids, expected 3 .*Set `ingest\.n_negatives`"):
        read_dataset("rechorus", tmp_path, _cfg(n_negatives=3))


def test_rechorus_negatives_not_a_list_of_ids(tmp_path):
    dev = [DEV[0], DEV[1], (DEV[2][0], DEV[2][1], DEV[2][2], "[2, x, 6]")]
    write_rechorus(tmp_path, dev=dev)
    with pytest.raises(DataError, match=r"dev\.csv: line 4, column `neg_items`: '\[2, x, 6\]' is not a list of integer ids"):
        read_dataset("rechorus", tmp_path, _cfg(n_negatives=3))


def test_rechorus_reads_numpy_style_lists(tmp_path):
    dev = [(u, i, t, " ".join(map(str, n)).join("[]")) for u, i, t, n in DEV]  # "[4 5 4]"
    raw = read_dataset("rechorus", write_rechorus(tmp_path, dev=dev), _cfg(n_negatives=3))
    assert raw.candidates.column("negatives").to_pylist()[:3] == [n for *_, n in DEV]


def test_rechorus_relation_id_naming_no_item(tmp_path):
    write_rechorus(tmp_path, meta_rows=["1\t1\t2\t[2]\t[]", "2\t1\t0\t[1, 99]\t[]"])
    with pytest.raises(DataError, match=r"item_meta\.csv: line 3, column `r_complement`: an id in a relation that names no item \(99"):
        read_dataset("rechorus", tmp_path, _cfg(n_negatives=3))


def test_rechorus_candidates_of_the_files_are_not_resampled(tmp_path):
    cfg_a, cfg_b = _cfg(n_negatives=3, seed=1), _cfg(n_negatives=3, seed=2)
    folder = write_rechorus(tmp_path, text=FULL_TEXT)
    a = ingest(read_dataset("rechorus", folder, cfg_a), cfg_a).candidates
    b = ingest(read_dataset("rechorus", folder, cfg_b), cfg_b).candidates
    assert a.equals(b)
    assert np.array_equal(np.asarray(pc.list_flatten(a.column("negatives"))), np.ravel([n for *_, n in DEV + TEST]))


# --------------------------------------------------------------------------------------------
# format defaults: a dataset needs only its name, format and source


def _defaults(fmt: str) -> IngestConfig:
    # every format-specific setting null (tiny catalogs: one sampled negative)
    return IngestConfig(seed=0, min_core=1, n_negatives=None if fmt == "rechorus" else 1)


@pytest.mark.parametrize("fmt, write, template, model_relations, some_types", [
    ("movielens", write_ml1m, "{title}[ ({year})][. Genres: {genres}]", ["attribute"], {"genres=Drama", "year"}),
    ("amazon2014", write_amazon2014, "{title}[. Category: {leaf_categories}][. Brand: {brand}]", ["attribute", "item-item"],
     {"also_bought", "also_viewed", "category", "brand"}),
    ("amazon2018", write_amazon2018, "{title}[. Category: {leaf_categories}][. Brand: {brand}]", ["attribute", "item-item"],
     {"also_bought", "also_viewed", "category", "brand"}),
    ("rechorus", lambda p: write_rechorus(p, text=FULL_TEXT), "{title}", ["attribute", "item-item"],
     {"complement", "substitute", "category", "brand"}),
])
def test_format_defaults(tmp_path, fmt, write, template, model_relations, some_types):
    result = ingest(read_dataset(fmt, write(tmp_path), _defaults(fmt)), _defaults(fmt))
    assert result.stats["text_template"] == template
    assert result.stats["model_relations"] == model_relations
    assert some_types <= set(result.relation_types.column("name").to_pylist())
    if fmt == "rechorus":
        assert result.stats["n_negatives"] == 3  # the files' own count


def test_format_defaults_recbole(tmp_path):
    from tests.conftest import write_recbole

    folder = write_recbole(tmp_path / "raw", n_users=12, n_items=8, per_user=6)
    cfg = IngestConfig(seed=0, min_core=1, n_negatives=1)
    result = ingest(read_dataset("recbole", folder, cfg), cfg)
    assert result.stats["text_template"] == "{title}[ ({year})][. Genres: {genres}]"
    assert result.items.column("text")[0].as_py().startswith("Movie number 1 (1933). Genres: ")
    names = set(result.relation_types.column("name").to_pylist())
    assert {"year", "genres=Comedy", "sequel", "shares_director"} <= names  # the Freebase film relations the .kg has
    assert result.stats["model_relations"] == ["attribute"]
    no_kg = IngestConfig(seed=0, min_core=1, n_negatives=1, kg_relations={})
    assert "sequel" not in ingest(read_dataset("recbole", folder, no_kg), no_kg).relation_types.column("name").to_pylist()
    (folder / "tiny.kg").unlink()  # no knowledge graph: no item-item relations, no error
    assert "sequel" not in ingest(read_dataset("recbole", folder, cfg), cfg).relation_types.column("name").to_pylist()


def test_params_override_the_format_defaults(tmp_path):
    cfg = IngestConfig(seed=0, min_core=1, n_negatives=1, text_template="{title} by {brand}", attributes={"brand": AttributeConfig()})
    result = ingest(read_dataset("amazon2014", write_amazon2014(tmp_path), cfg), cfg)
    assert result.stats["text_template"] == "{title} by {brand}"
    assert "category" not in result.relation_types.column("name").to_pylist()


def test_grouplens_ml1m_zip_with_defaults(tmp_path):
    """The GroupLens zip as downloaded (a top-level ml-1m/ folder): name, format and source only."""
    import zipfile

    from lrd.config.datasets import SourceConfig
    from lrd.data.sources import fetch

    write_ml1m(tmp_path / "src")
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in (tmp_path / "src" / "ml-1m").iterdir():
            zf.write(f, f"ml-1m/{f.name}")
    folder = fetch(SourceConfig(kind="path", path=str(archive)), tmp_path / "raw" / "ml-1m", tmp_path / "downloads")
    cfg = IngestConfig(seed=0, min_core=1, n_negatives=1)
    result = ingest(read_dataset("movielens", folder, cfg), cfg)
    assert result.stats["items"] == 4 and result.items.column("text")[0].as_py() == "Toy Story (1995). Genres: Animation, Children's, Comedy"
