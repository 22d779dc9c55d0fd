"""The data cases of the 140-case bad-input probe (issue 12), one test each, on tiny files.

Each bad input gives one DataError/ConfigError naming the file and the line or field (and the
fix), or the correct result. Readers and ingest only; the stage and CLI cases live elsewhere.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from lrd.config.base import build

from lrd.config.datasets import SourceConfig

from lrd.config.ingest import IngestConfig
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.data.sources import fetch
from lrd.errors import ConfigError, DataError
from tests.conftest import write_recbole
from tests.test_readers import (
    DEV, FULL_TEXT, TEST, TRAIN, _reviews, _write, write_amazon2014, write_amazon2018, write_ml100k, write_rechorus,
)


def _cfg(**kw) -> IngestConfig:
    return build(IngestConfig, {"seed": 0, "min_core": 1, **kw}, "ingest")


def _ingest(fmt: str, folder: Path, **kw):
    cfg = _cfg(**kw)
    return ingest(read_dataset(fmt, folder, cfg), cfg)


def _edit_line(path: Path, number: int, new: str) -> None:
    """Replace line `number` (1-based) of a text file."""
    lines = path.read_text().splitlines()
    lines[number - 1] = new
    path.write_text("\n".join(lines) + "\n")


def _recbole(tmp_path: Path) -> Path:
    return write_recbole(tmp_path / "raw", n_users=6, n_items=8, per_user=4, kg=False)


def _inter_line(folder: Path, number: int, user=None, item=None, ts=None) -> None:
    """Set fields of line `number` of tiny.inter (user \\t item \\t rating \\t timestamp)."""
    path = folder / "tiny.inter"
    fields = path.read_text().splitlines()[number - 1].split("\t")
    for i, v in ((0, user), (1, item), (3, ts)):
        if v is not None:
            fields[i] = v
    _edit_line(path, number, "\t".join(fields))


# --------------------------------------------------------------------------------------------
# timestamps


def test_millisecond_timestamps_are_converted_with_a_log_line(tmp_path, caplog):
    folder = _recbole(tmp_path)
    path = folder / "tiny.inter"
    lines = path.read_text().splitlines()
    lines[1:] = ["\t".join(f[:3] + [f"{int(f[3]) * 1000 + 999}"]) for f in (line.split("\t") for line in lines[1:])]
    path.write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING):
        result = _ingest("recbole", folder, n_negatives=2)
    assert "holds milliseconds since 1970" in caplog.text and "converted to seconds" in caplog.text
    assert result.stats["time_span"]["first"].startswith("1997")  # not the year 29856
    seconds = write_recbole(tmp_path / "s", n_users=6, n_items=8, per_user=4, kg=False)
    assert result.interactions.equals(_ingest("recbole", seconds, n_negatives=2).interactions)


def test_millisecond_timestamps_amazon(tmp_path):
    reviews = "".join(json.dumps({**r, "unixReviewTime": r["unixReviewTime"] * 1000}) + "\n"
                      for r in map(json.loads, _reviews().splitlines()))
    result = _ingest("amazon2014", write_amazon2014(tmp_path, reviews=reviews), n_negatives=1)
    assert result.stats["time_span"] == {"first": "2011-03-13", "last": "2011-03-23"}


def test_mixed_time_units_are_refused(tmp_path):
    folder = _recbole(tmp_path)
    _inter_line(folder, 3, ts="880000000000")  # one value in ms among seconds
    with pytest.raises(DataError, match=r"tiny\.inter: column `timestamp:float` mixes time units: line 3 has 880000000000 "
                                        r"\(milliseconds\) but line 2 has .*one unit"):
        read_dataset("recbole", folder, _cfg())


@pytest.mark.parametrize("value, message", [
    ("inf", r"line 4, column `timestamp:float`: inf is not a timestamp"),
    ("-inf", r"line 4, column `timestamp:float`: -inf is not a timestamp"),
    ("nan", r"line 4, column `timestamp:float`: nan is not a timestamp"),
    ("NaN", r"line 4, column `timestamp:float`: nan is not a timestamp"),
    ("1e20", r"line 4, column `timestamp:float`: 1e\+20 is out of range for a timestamp"),
    ("", r"line 4, column `timestamp:float`: empty value"),
    ("-7e10", r"line 4, column `timestamp:float`: -70000000000 is not a date between the years 1 and 9999"),
])
def test_bad_recbole_timestamp(tmp_path, value, message):
    folder = _recbole(tmp_path)
    _inter_line(folder, 4, ts=value)
    with pytest.raises(DataError, match=r"tiny\.inter: " + message):
        read_dataset("recbole", folder, _cfg())


@pytest.mark.parametrize("value, message", [
    ("", r"line 3, column `timestamp`: empty value"),
    ("nan", r"line 3, column `timestamp`: 'nan' is not an integer"),
    ("NaN", r"line 3, column `timestamp`: 'NaN' is not an integer"),
    ("99999999999999999999", r"line 3, column `timestamp`: '99999999999999999999' is not an integer"),
])
def test_bad_movielens_timestamp(tmp_path, value, message):
    folder = write_ml100k(tmp_path)
    path = folder / "ml-100k" / "u.data"
    fields = path.read_text().splitlines()[2].split("\t")
    _edit_line(path, 3, "\t".join(fields[:3] + [value]))
    with pytest.raises(DataError, match=r"u\.data: " + message):
        read_dataset("movielens", folder, _cfg())


@pytest.mark.parametrize("value, message", [("", "empty value"), ("nan", "'nan' is not an integer")])
def test_bad_rechorus_timestamp(tmp_path, value, message):
    folder = write_rechorus(tmp_path, text=FULL_TEXT)
    _edit_line(folder / "train.csv", 3, f"1\t2\t{value}")
    with pytest.raises(DataError, match=rf"train\.csv: line 3, column `time`: {message}"):
        read_dataset("rechorus", folder, _cfg())


@pytest.mark.parametrize("value, message", [
    (1e20, r"line 2: field `unixReviewTime` is 1e\+20, not an integer"),
    (10**20, r"line 2: field `unixReviewTime` is 100000000000000000000, out of range"),
    (None, r"line 2: field `unixReviewTime` is None, not an integer"),
    (10**18 * 9, r"column `unixReviewTime` mixes time units: line 2 has 9000000000000000000 \(nanoseconds\) but line 1 has 1300000000"),
])
def test_bad_amazon_timestamp(tmp_path, value, message):
    write_amazon2014(tmp_path, reviews=_reviews(unixReviewTime=value))
    with pytest.raises(DataError, match=r"reviews_Office_Products_5\.json\.gz: " + message):
        read_dataset("amazon2014", tmp_path, _cfg())


# --------------------------------------------------------------------------------------------
# ids


@pytest.mark.parametrize("value, message", [("", "empty value"), ("nan", "'nan' is not an integer"), ("NaN", "'NaN' is not an integer")])
@pytest.mark.parametrize("column", ["user_id", "item_id"])
def test_bad_rechorus_id(tmp_path, column, value, message):
    folder = write_rechorus(tmp_path, text=FULL_TEXT)
    _edit_line(folder / "train.csv", 4, "\t".join([value, "3", "115"] if column == "user_id" else ["2", value, "115"]))
    with pytest.raises(DataError, match=rf"train\.csv: line 4, column `{column}`: {message}"):
        read_dataset("rechorus", folder, _cfg())


@pytest.mark.parametrize("column, field", [("user_id:token", "user"), ("item_id:token", "item")])
@pytest.mark.parametrize("value", ["", "  "])
def test_blank_recbole_id(tmp_path, column, field, value):
    folder = _recbole(tmp_path)
    _inter_line(folder, 5, **{field: value})
    with pytest.raises(DataError, match=rf"tiny\.inter: line 5, column `{column}`: empty value\. Fill it in"):
        read_dataset("recbole", folder, _cfg())


def test_blank_amazon_reviewer(tmp_path):
    write_amazon2014(tmp_path, reviews=_reviews(reviewerID=" "))
    with pytest.raises(DataError, match=r"json\.gz: line 2: field `reviewerID` is empty"):
        read_dataset("amazon2014", tmp_path, _cfg())


# --------------------------------------------------------------------------------------------
# files: gzip, BOM, encoding, empty


@pytest.mark.parametrize("which", ["reviews", "meta"])
def test_truncated_gzip(tmp_path, which):
    write_amazon2018(tmp_path)
    path = tmp_path / ("Office_Products_5.json" if which == "reviews" else "meta_Office_Products.json.gz")
    if which == "reviews":  # make the reviews a .gz too
        path.with_suffix(".json.gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
        path = path.with_suffix(".json.gz")
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError, match=rf"{path.name}: the gzip file is truncated .*Download or copy it again"):
        read_dataset("amazon2018", tmp_path, _cfg())


def test_fake_gzip(tmp_path):
    write_amazon2014(tmp_path)
    path = tmp_path / "reviews_Office_Products_5.json.gz"
    path.write_bytes(gzip.decompress(path.read_bytes()))  # plain text under a .gz name
    with pytest.raises(DataError, match=r"reviews_Office_Products_5\.json\.gz: not a gzip file although its name ends in \.gz"):
        read_dataset("amazon2014", tmp_path, _cfg())


@pytest.mark.parametrize("fmt", ["recbole", "rechorus", "movielens", "amazon2014"])
def test_utf8_bom_is_stripped(tmp_path, fmt):
    folder = {"recbole": _recbole, "rechorus": lambda p: write_rechorus(p, text=FULL_TEXT),
              "movielens": write_ml100k, "amazon2014": write_amazon2014}[fmt](tmp_path)
    path = {"recbole": folder / "tiny.inter", "rechorus": folder / "train.csv", "movielens": folder / "ml-100k" / "u.data",
            "amazon2014": folder / "reviews_Office_Products_5.json.gz"}[fmt]
    before = read_dataset(fmt, folder, _cfg(n_negatives=3 if fmt == "rechorus" else None)).interactions
    data = path.read_bytes()
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + gzip.decompress(data)) if path.suffix == ".gz" else b"\xef\xbb\xbf" + data)
    assert read_dataset(fmt, folder, _cfg(n_negatives=3 if fmt == "rechorus" else None)).interactions.equals(before)


def test_bad_utf8_names_the_line(tmp_path):
    folder = _recbole(tmp_path)
    path = folder / "tiny.inter"
    lines = path.read_bytes().split(b"\n")
    lines[3] = b"\xff\xfe" + lines[3]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataError, match=r"tiny\.inter: line 4: not UTF-8 text"):
        read_dataset("recbole", folder, _cfg())


def test_empty_file(tmp_path):
    folder = write_rechorus(tmp_path, text=FULL_TEXT)
    (folder / "dev.csv").write_text("")
    with pytest.raises(DataError, match=r"dev\.csv: the file is empty"):
        read_dataset("rechorus", folder, _cfg())


# --------------------------------------------------------------------------------------------
# items and their text


def test_two_texts_for_one_item(tmp_path):
    folder = write_rechorus(tmp_path, text=FULL_TEXT + "2\tAnother text for item 2\n")
    with pytest.raises(DataError, match=r"item_text\.csv: lines 2 and 8 both describe item 2 .*Keep one line per item"):
        read_dataset("rechorus", folder, _cfg())


@pytest.mark.parametrize("fmt", ["recbole", "movielens", "rechorus-meta"])
def test_item_described_twice(tmp_path, fmt):
    if fmt == "recbole":
        folder = _recbole(tmp_path)
        (folder / "tiny.item").write_text((folder / "tiny.item").read_text() + "3\tAnother movie\t1990\tDrama\n")
        name = r"tiny\.item: lines 4 and 10 both describe item '3'"
    elif fmt == "movielens":
        folder = write_ml100k(tmp_path)
        path = folder / "ml-100k" / "u.item"
        path.write_bytes(path.read_bytes() + path.read_bytes().splitlines(keepends=True)[1])
        name = r"u\.item: lines 2 and 5 both describe movie '2'"
        fmt = "movielens"
    else:
        folder = write_rechorus(tmp_path, text=FULL_TEXT, meta_rows=["1\t1\t2\t[]\t[]", "2\t1\t0\t[]\t[]", "1\t3\t3\t[]\t[]"])
        name = r"item_meta\.csv: lines 2 and 4 both describe item 1"
        fmt = "rechorus"
    with pytest.raises(DataError, match=name):
        read_dataset(fmt, folder, _cfg())


def test_amazon_item_without_title(tmp_path):
    lines = [repr({"asin": "A1", "title": "Pens"}), repr({"asin": "A2", "brand": "Acme", "categories": [["Office Products", "Staplers"]]}),
             repr({"asin": "A3", "title": "Paper"}), repr({"asin": "A4", "title": "Binder"})]
    result = _ingest("amazon2014", write_amazon2014(tmp_path, meta_lines=lines), n_negatives=1)
    texts = dict(zip(result.items.column("raw_id").to_pylist(), result.items.column("text").to_pylist()))
    assert texts["A2"] == "Category: Staplers. Brand: Acme"


def test_missing_item_text_blames_the_text_file(tmp_path):
    folder = write_rechorus(tmp_path)  # item_text.csv: item 3's text is empty, 4 and 6 have none
    with pytest.raises(DataError, match=r"item_text\.csv: 3 item\(s\) have no text \(raw ids 3, 4, 6\)\. Add their text there"):
        _ingest("rechorus", folder, text_fallback="error")


def test_no_text_file_names_the_folder(tmp_path):
    folder = write_rechorus(tmp_path, text=None)
    with pytest.raises(DataError, match=rf"{folder}: 6 item\(s\) have no text and no title"):
        _ingest("rechorus", folder)


# --------------------------------------------------------------------------------------------
# stored candidates (ReChorus dev/test neg_items)


def _with_row(rows, index, negatives=None, **change):
    u, i, t, n = rows[index]
    row = (change.get("user", u), change.get("item", i), change.get("time", t), negatives if negatives is not None else n)
    return [*rows[:index], row, *rows[index + 1:]]


def test_target_inside_its_negatives(tmp_path):
    folder = write_rechorus(tmp_path, dev=_with_row(DEV, 1, [5, 4, 6]), text=FULL_TEXT)  # user 2's dev target is 4
    with pytest.raises(DataError, match=r"dev\.csv: line 3: neg_items holds the row's own target \(item 4\) \(1 of 6 dev/test rows\)\. "
                                        r"The target then competes with itself.*`ingest\.accept_candidates: \[repeated_negatives, target_in_negatives\]`"):
        _ingest("rechorus", folder)
    stats = _ingest("rechorus", folder, accept_candidates=["repeated_negatives", "target_in_negatives"]).stats
    assert stats["candidates"]["rows_with_target_in_negatives"] == 1


def test_negative_outside_the_catalog(tmp_path):
    folder = write_rechorus(tmp_path, dev=_with_row(DEV, 2, [2, 3, 99]), text=FULL_TEXT)
    with pytest.raises(DataError, match=r"dev\.csv: line 4: neg_items names item 99, which no row of the train/dev/test files has"):
        _ingest("rechorus", folder)


def test_repeated_negatives_are_kept_and_counted(tmp_path):
    folder = write_rechorus(tmp_path, dev=_with_row(DEV, 0, [6, 5, 6]), text=FULL_TEXT)
    result = _ingest("rechorus", folder)
    assert result.candidates.column("negatives").to_pylist()[0] == [6, 5, 6]  # as stored
    assert result.stats["candidates"]["rows_with_repeated_negatives"] == 6 and result.stats["n_negatives"] == 3
    with pytest.raises(DataError, match=r"dev\.csv: line 2: neg_items repeats item 6 \(6 of 6 dev/test rows\)"):
        _ingest("rechorus", folder, accept_candidates=[])


def test_negatives_the_user_interacted_with(tmp_path):
    folder = write_rechorus(tmp_path, dev=_with_row(DEV, 0, [1, 5, 6]), text=FULL_TEXT)  # user 1 trained on item 1
    with pytest.raises(DataError, match=r"dev\.csv: line 2: neg_items holds items that user 1 has interacted with \(1 of 6"):
        _ingest("rechorus", folder)
    stats = _ingest("rechorus", folder, accept_candidates=["repeated_negatives", "interacted_negatives"]).stats
    assert stats["candidates"]["rows_with_interacted_negatives"] == 1


def test_user_with_two_test_rows(tmp_path):
    folder = write_rechorus(tmp_path, text=FULL_TEXT)
    with open(folder / "test.csv", "a") as f:
        f.write("1\t7\t400\t[5, 6, 5]\n")  # user 1 again
    with pytest.raises(DataError, match=r"test\.csv: line 2: user 1 has more than one test row \(2 of 7 dev/test rows\)\. "
                                        r"The user is evaluated more than once"):
        _ingest("rechorus", folder)
    stats = _ingest("rechorus", folder, accept_candidates=["repeated_negatives", "several_rows_per_user"]).stats
    assert stats["candidates"]["rows_with_several_rows_per_user"] == 2


def test_gapped_item_ids_are_compacted(tmp_path, caplog):
    times10 = lambda rows: [(u, 10 * i, t, *([[10 * x for x in n[0]]] if n else [])) for u, i, t, *n in rows]  # noqa: E731
    folder = tmp_path
    _write(folder / "train.csv", "user_id\titem_id\ttime\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in times10(TRAIN)))
    for name, rows in (("dev", DEV), ("test", TEST)):
        _write(folder / f"{name}.csv", "user_id\titem_id\ttime\tneg_items\n" + "".join(f"{u}\t{i}\t{t}\t{n}\n" for u, i, t, n in times10(rows)))
    _write(folder / "item_text.csv", "".join(f"{10 * i}\tItem {i}\n" for i in range(1, 7)))
    with caplog.at_level(logging.WARNING):
        result = _ingest("rechorus", folder)
    assert "the 6 item ids are not 1..6 (they run from 10 to 60); renumbered" in caplog.text
    assert result.stats["items"] == 6
    assert result.items.column("item").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert result.items.column("raw_id").to_pylist() == ["10", "20", "30", "40", "50", "60"]
    assert result.items.column("text").to_pylist() == [f"Item {i}" for i in range(1, 7)]
    assert result.candidates.column("negatives").to_pylist() == [n for *_, n in DEV + TEST]  # the same items, renumbered
    assert result.candidates.column("target").to_pylist() == [i for _, i, *_ in DEV + TEST]


def test_stats_record_the_real_number_of_negatives(tmp_path):
    assert _ingest("rechorus", write_rechorus(tmp_path, text=FULL_TEXT)).stats["n_negatives"] == 3
    stats = _ingest("recbole", _recbole(tmp_path), n_negatives=4).stats
    assert stats["n_negatives"] == 4 and stats["candidates"]["source"] == "sampled"


def test_negatives_count_differs_between_rows(tmp_path):
    folder = write_rechorus(tmp_path, dev=_with_row(DEV, 2, [2, 3]), text=FULL_TEXT)
    with pytest.raises(DataError, match=r"dev\.csv: line 4: neg_items has 2 ids, but .*dev\.csv: line 2 has 3; every dev/test row"):
        read_dataset("rechorus", folder, _cfg())


# --------------------------------------------------------------------------------------------
# the reference's ReChorus folder: <DS>.text keyed by raw ids + <DS>.item2index

ASINS = {i: f"B00{i:07d}X" for i in range(1, 8)}


def _reference_folder(tmp_path: Path, index: str | None = None, text: str | None = None) -> Path:
    folder = write_rechorus(tmp_path, text=None)
    _write(folder / "Office.item2index", index if index is not None else "".join(f"{ASINS[i]}\t{i}\n" for i in range(1, 7)))
    _write(folder / "Office.text", text if text is not None else "id\ttext\n" + "".join(f"{ASINS[i]}\tThing {i}\n" for i in (6, 2, 1, 3, 4, 5)))
    return folder


def test_reference_folder_as_is(tmp_path):
    result = _ingest("rechorus", _reference_folder(tmp_path))
    assert result.items.column("raw_id").to_pylist() == [ASINS[i] for i in range(1, 7)]
    assert result.items.column("text").to_pylist() == [f"Thing {i}" for i in range(1, 7)]
    assert result.candidates.column("negatives").to_pylist() == [n for *_, n in DEV + TEST]
    # the complement / substitute lists, between the same items (now named by asin)
    assert result.stats["relations"]["complement"] == 3 and result.stats["model_relations"] == ["attribute", "item-item"]


def test_reference_text_without_header(tmp_path):
    text = "".join(f"{ASINS[i]}\tThing {i}\n" for i in range(1, 7))
    result = _ingest("rechorus", _reference_folder(tmp_path, text=text))
    assert result.items.column("text").to_pylist() == [f"Thing {i}" for i in range(1, 7)]


def test_text_ids_match_neither(tmp_path):
    folder = _reference_folder(tmp_path, text="id\ttext\nX1\tone\nX2\ttwo\n")
    with pytest.raises(DataError, match=r"Office\.text: none of its 2 ids names an item: found 'X1', 'X2'; expected the integer item ids "
                                        r"of train/dev/test\.csv \(e\.g\. 1, 2, 3\) or the raw ids of the item2index file \(e\.g\. 'B000000001X'"):
        _ingest("rechorus", folder)


def test_raw_text_ids_without_item2index(tmp_path):
    folder = _reference_folder(tmp_path)
    (folder / "Office.item2index").unlink()
    with pytest.raises(DataError, match=r"Office\.text: none of its 6 ids .*add the reference's `<DS>\.item2index` file"):
        _ingest("rechorus", folder)


@pytest.mark.parametrize("index, message", [
    ("".join(f"{ASINS[i]}\t{i}\n" for i in range(1, 7)) + f"{ASINS[2]}\t7\n", r"lines 2 and 7 both describe item 'B000000002X'"),
    ("".join(f"{ASINS[i]}\t{i}\n" for i in range(1, 7)) + "B0OTHER\t3\n", r"lines 3 and 7 both describe item 3"),
    ("".join(f"{ASINS[i]}\t{i}\n" for i in range(1, 8)), r"line 7 maps 'B000000007X' to item 7, which no row of train/dev/test\.csv has"),
    ("".join(f"{ASINS[i]}\t{i}\n" for i in range(1, 6)) + "B0\tx\n", r"line 6, column `item_id`: 'x' is not an integer"),
])
def test_bad_item2index(tmp_path, index, message):
    with pytest.raises(DataError, match=r"Office\.item2index: " + message):
        read_dataset("rechorus", _reference_folder(tmp_path, index=index), _cfg())


def test_both_text_files_say_which_is_read(tmp_path, caplog):
    folder = _reference_folder(tmp_path)
    _write(folder / "item_text.csv", FULL_TEXT)
    with caplog.at_level(logging.WARNING):
        result = _ingest("rechorus", folder)
    assert f"both {folder / 'item_text.csv'} and {folder / 'Office.text'} hold item text; reading item_text.csv" in caplog.text
    assert result.items.column("text").to_pylist() == [f"Item {i}" for i in range(1, 7)]


# --------------------------------------------------------------------------------------------
# sources


def test_checksum_advice_for_a_local_file_names_it(tmp_path):
    f = tmp_path / "data.zip"
    f.write_bytes(b"not the file you expected")
    with pytest.raises(DataError, match=r"data\.zip: sha256 is .*: copy .*data\.zip again") as err:
        fetch(SourceConfig(kind="path", path=str(f), sha256="00" * 32), tmp_path / "out", tmp_path / "downloads")
    assert "delete" not in str(err.value)


def test_checksum_advice_for_a_download_names_no_removed_file(tmp_path):
    f = tmp_path / "data.zip"
    f.write_bytes(b"not the file you expected")
    with pytest.raises(DataError, match=r"file://.*data\.zip: the download's sha256 is .*nothing was kept.*run the stage again") as err:
        fetch(SourceConfig(kind="url", url=f.as_uri(), sha256="00" * 32), tmp_path / "out", tmp_path / "downloads")
    named = [w.strip("(),.:") for w in str(err.value).split() if "/" in w and not w.startswith("file:")]
    assert all(Path(w).exists() for w in named), named
    assert not any(p.name.startswith(".") for p in (tmp_path / "downloads").iterdir())


def test_damaged_archive(tmp_path):
    import zipfile

    archive = tmp_path / "d.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ml/u.data", "1\t2\t3\t4\n" * 1000)
    data = bytearray(archive.read_bytes())
    data[60:80] = b"\0" * 20  # inside the compressed member
    archive.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"d\.zip: cannot extract the archive .*Fetch it again"):
        fetch(SourceConfig(kind="path", path=str(archive)), tmp_path / "out", tmp_path / "downloads")


# --------------------------------------------------------------------------------------------
# params


@pytest.mark.parametrize("ingest_params, message", [
    ({"n_negatives": 0}, r"`ingest\.n_negatives` is 0; it must be >= 1"),
    ({"min_core": -1}, r"`ingest\.min_core` is -1; it must be >= 0"),
    ({"max_items_per_value": 1}, r"`ingest\.max_items_per_value` is 1; it must be >= 2"),
    ({"text_template": "no fields"}, r"`ingest\.text_template` 'no fields' must use at least one \{column\}"),
    ({"attributes": {"year": {"bucket_edges": [1990, 1980]}}}, r"`bucket_edges` \[1990\.0, 1980\.0\] must be strictly increasing"),
    ({"accept_candidates": ["repeats"]}, r"`ingest\.accept_candidates\[0\]` is 'repeats'; choose one of 'repeated_negatives'"),
    ({"kg_relations": {"film.film.actor": "an actor"}}, r"`ingest\.kg_relations` maps to 'an actor'; use a plain name"),
])
def test_ingest_params_are_checked(ingest_params, message):
    with pytest.raises(ConfigError, match=message):
        IngestConfig.from_params({"ingest": ingest_params})


def test_every_row_is_checked_not_just_the_first(tmp_path):
    """The checks are vectorised over all rows: a problem in the last row is found too."""
    folder = write_rechorus(tmp_path, text=FULL_TEXT)
    _edit_line(folder / "test.csv", 4, "3\t6\t302\t[3, 2, 6]")
    with pytest.raises(DataError, match=r"test\.csv: line 4: neg_items holds the row's own target \(item 6\)"):
        _ingest("rechorus", folder)
    assert np.array_equal(pc.list_value_length(read_dataset("rechorus", folder, _cfg()).candidates.column("negatives")), [3] * 6)


def test_nothing_to_evaluate(tmp_path):
    folder = write_rechorus(tmp_path / "r", text=FULL_TEXT)
    for name in ("dev", "test"):
        (folder / f"{name}.csv").write_text("user_id\titem_id\ttime\tneg_items\n")
    with pytest.raises(DataError, match=r"dev\.csv: no rows after the header; the dev split needs its interactions"):
        _ingest("rechorus", folder)
    single = write_recbole(tmp_path / "s", n_users=6, n_items=8, per_user=1, kg=False)
    with pytest.raises(DataError, match=r"tiny\.inter: no dev or test interaction, so nothing to evaluate on \(no user has two interactions"):
        _ingest("recbole", single, n_negatives=1)


@pytest.mark.parametrize("text_name, keyed_by", [("Office.text", "raw"), ("item_text.csv", "integer")])
def test_numeric_raw_ids_tie_goes_by_file_name(tmp_path, text_name, keyed_by):
    """Raw ids that are numbers too (MovieLens in ReChorus form): `.text` is the reference's, keyed by raw ids."""
    folder = write_rechorus(tmp_path, text=None)
    shuffled = {1: 3, 2: 1, 3: 2, 4: 6, 5: 4, 6: 5}  # raw id -> integer id
    _write(folder / "ML.item2index", "".join(f"{raw}\t{i}\n" for raw, i in shuffled.items()))
    _write(folder / text_name, "".join(f"{k}\tText {k}\n" for k in range(1, 7)))
    result = _ingest("rechorus", folder)
    texts = dict(zip(result.items.column("item").to_pylist(), result.items.column("text").to_pylist()))
    if keyed_by == "raw":
        assert texts == {i: f"Text {raw}" for raw, i in shuffled.items()}
    else:
        assert texts == {i: f"Text {i}" for i in range(1, 7)}
