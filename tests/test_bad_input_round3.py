"""The third probe (issue 29), its input and traceback cases: one regression test each. Item
columns with reserved meanings are never replaced, folder sources stay inside the folder, and
each former traceback is one line naming the file or value and the fix."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from lrd import schemas
from lrd.cli import main
from lrd.data.sources import _materialise
from lrd.data.synthetic import write_recbole
from lrd.errors import DataError, ModelError
from tests.test_bad_input import _ingest
from tests.test_readers import FULL_TEXT, write_rechorus

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# reader columns with reserved meanings


def _rechorus_with(tmp_path: Path, column: str, values: list[str]) -> Path:
    """The tiny ReChorus folder with one more item_meta.csv column."""
    folder = write_rechorus(tmp_path / "r", text=FULL_TEXT)
    path = folder / "item_meta.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([f"{lines[0]}\t{column}", *(f"{line}\t{v}" for line, v in zip(lines[1:], values))]) + "\n")
    return folder


def test_an_i_title_column_is_an_attribute_not_the_item_text(tmp_path, caplog):
    folder = _rechorus_with(tmp_path, "i_title", ["BRAND1"] * 5)
    with caplog.at_level(logging.WARNING):
        result = _ingest("rechorus", folder, n_negatives=3)
    assert "column `i_title` would replace the items' own `title`; read as the attribute `title_attr`" in caplog.text
    assert result.items.column("text").to_pylist() == [f"Item {i}" for i in range(1, 7)]
    assert "title_attr" in result.relation_types.column("name").to_pylist()


def test_an_i_raw_id_column_keeps_the_raw_ids_and_the_links(tmp_path, caplog):
    plain = _ingest("rechorus", write_rechorus(tmp_path / "plain", text=FULL_TEXT), n_negatives=3)
    folder = _rechorus_with(tmp_path, "i_raw_id", ["X", "X", "Y", "Y", "Z"])
    with caplog.at_level(logging.WARNING):
        result = _ingest("rechorus", folder, n_negatives=3)
    assert "read as the attribute `raw_id_attr`" in caplog.text
    assert result.items.column("raw_id").to_pylist() == plain.items.column("raw_id").to_pylist()
    for name in ("complement", "substitute"):
        assert result.stats["relations"][name] == plain.stats["relations"][name] > 0
    assert "raw_id" not in result.relation_types.column("name").to_pylist()


@pytest.mark.parametrize("column", ["i_item_id", "i_item", "i_text"])
def test_other_reserved_rechorus_columns_are_renamed(tmp_path, column):
    result = _ingest("rechorus", _rechorus_with(tmp_path, column, ["a", "b", "c", "d", "e"]), n_negatives=3)
    assert result.items.column("item").to_pylist() == [1, 2, 3, 4, 5, 6]
    assert result.items.column("text").to_pylist() == [f"Item {i}" for i in range(1, 7)]
    assert f"{column[2:]}_attr" in result.items.column_names


@pytest.mark.parametrize("column, message", [
    ("i_", r"item_meta\.csv: line 1: column `i_` has no name"),
    ("r_", r"item_meta\.csv: line 1: column `r_` has no name"),
    ("i_brand", r"item_meta\.csv: line 1: the header names `i_brand` twice"),
])
def test_unnamed_or_repeated_rechorus_columns(tmp_path, column, message):
    values = ["[]"] * 5 if column == "r_" else ["1"] * 5
    with pytest.raises(DataError, match=message):
        _ingest("rechorus", _rechorus_with(tmp_path, column, values), n_negatives=3)


def _recbole_with(tmp_path: Path, field: str) -> Path:
    folder = write_recbole(tmp_path / "raw", n_users=6, n_items=8, per_user=4, kg=False)
    path = next(folder.glob("*.item"))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([f"{lines[0]}\t{field}", *(f"{line}\tV{n % 2}" for n, line in enumerate(lines[1:]))]) + "\n")
    return folder


@pytest.mark.parametrize("field", ["raw_id:token", "text:token", "item:token", "title:token"])
def test_reserved_recbole_fields_are_renamed(tmp_path, field, caplog):
    plain = _ingest("recbole", write_recbole(tmp_path / "plain", n_users=6, n_items=8, per_user=4, kg=False), min_core=0, n_negatives=2)
    with caplog.at_level(logging.WARNING):
        result = _ingest("recbole", _recbole_with(tmp_path, field), min_core=0, n_negatives=2)
    name = field.split(":")[0]
    assert f"read as the attribute `{name}_attr`" in caplog.text
    for column in ("item", "raw_id", "title", "text"):
        assert result.items.column(column).to_pylist() == plain.items.column(column).to_pylist()


def test_a_repeated_recbole_field(tmp_path):
    with pytest.raises(DataError, match=r"tiny\.item: line 1: the header names `item_id:token` twice"):
        _ingest("recbole", _recbole_with(tmp_path, "item_id:token"), min_core=0, n_negatives=2)


# --------------------------------------------------------------------------------------------
# folder sources


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("x")
    return folder


@pytest.mark.parametrize("member", ["../../../../etc/apt", "/etc/apt", "sub/../../x"])
def test_a_folder_member_outside_the_folder_is_refused(source, tmp_path, member):
    with pytest.raises(DataError, match=r"refusing `source.member` .* which leads outside the dataset folder"):
        _materialise(source, tmp_path / "out", member)
    assert not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("member, message", [("nope", r"src/nope: does not exist"), ("sub/a.txt", r"a\.txt: is a file, not a folder")])
def test_a_missing_folder_member_is_one_line(source, tmp_path, member, message):
    with pytest.raises(DataError, match=message + r".*Fix the dataset's `source.member`"):
        _materialise(source, tmp_path / "out", member)


def test_links_that_cannot_be_copied_are_named(source, tmp_path):
    link = source / "sub" / "dangling.txt"
    os.symlink(source / "gone.txt", link)
    with pytest.raises(DataError, match=r"dangling\.txt: cannot copy it .* a link to .*gone\.txt', which does not exist: remove it"):
        _materialise(source, tmp_path / "out1", "sub")
    link.unlink()
    os.symlink(source / "sub" / "b", source / "sub" / "c")
    os.symlink(source / "sub" / "c", source / "sub" / "b")
    with pytest.raises(DataError, match=r"sub/[bc]: cannot copy it into the dataset\. It is a link loop"):
        _materialise(source, tmp_path / "out2", None)
    for name in "bc":
        (source / "sub" / name).unlink()
    os.symlink(source, source / "sub" / "up")
    with pytest.raises(DataError, match=r"sub/up: a link to .*, a folder that holds it: copying it would never end"):
        _materialise(source, tmp_path / "out3", None)
    (source / "sub" / "up").unlink()
    _materialise(source, tmp_path / "out4", "sub")
    assert (tmp_path / "out4" / "a.txt").read_text() == "x"


# --------------------------------------------------------------------------------------------
# the CLI


@pytest.fixture
def store_repo(tmp_path: Path, monkeypatch) -> Path:
    """A working tree with items and a flat embedding store of 6 items, for dataset `tiny`."""
    from lrd.config.embed import EmbedConfig
    from lrd.embed.pipeline import embed_items
    from lrd.embed.store import store_dir
    from lrd.paths import Paths

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "v.npy", rng.standard_normal((6, 4)).astype(np.float32))
    np.save(tmp_path / "v.ids.npy", np.arange(1, 7))
    titles = ["Alien", "Aliens", "Heat", "Toy Story", "Toy Story 2", "Ronin"]
    params = {**yaml.safe_load((REPO / "params.yaml").read_text()),  # its models: `lrd sql` reads the matrix's cells
              "datasets": {"tiny": {"format": "recbole", "source": {"kind": "path", "path": "x"}}},
              "embed": {"backend": "file", "path": str(tmp_path / "v.npy"), "normalize": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    items = pa.table({"item": pa.array(np.arange(1, 7), pa.int32()), "raw_id": [str(i) for i in range(1, 7)], "title": titles, "text": titles})
    paths = Paths("tiny")
    paths.processed.mkdir(parents=True)
    pq.write_table(items.cast(schemas.ITEM_COLUMNS), paths.table("items"))
    cfg = EmbedConfig.from_params(params)
    embed_items(items, cfg, store_dir(paths, cfg), tmp_path / "cache")
    return tmp_path


def test_neighbors_k_is_bounded_by_the_items(store_repo):
    result = CliRunner().invoke(main, ["neighbors", "1", "--k", "3000000000"])
    assert result.exit_code == 0, result.output
    assert "--k 3000000000 is more than the 5 items there are to show; showing all 5" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()[:1].isdigit()]) == 5


@pytest.mark.parametrize("query", ["²", "١"])
def test_neighbors_of_a_unicode_digit_is_a_title_search(store_repo, query):
    result = CliRunner().invoke(main, ["neighbors", query])
    assert result.exit_code == 2 and f"no item title contains {query!r}" in result.output, result.output


def test_sql_limit_beyond_any_table(store_repo):
    result = CliRunner().invoke(main, ["sql", "SELECT item FROM items ORDER BY item", "--limit", "99999999999999999999", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert result.output.split() == ["item", "1", "2", "3", "4", "5", "6"]


def test_sql_query_on_stdin_that_is_not_utf8(store_repo):
    result = CliRunner().invoke(main, ["sql", "-"], input=b"SELECT 1;\nSELECT '\xff'")
    assert result.exit_code == 2 and "the query on stdin is not UTF-8 text (line 2" in result.output, result.output


@pytest.mark.parametrize("path, message", [
    ("/dev/zero", "is not a regular file"), ("big.yaml", "is over 1 MiB"), ("latin1.yaml", "line 2 is not UTF-8 text"),
])
def test_params_that_are_no_params_file(store_repo, path, message):
    (store_repo / "big.yaml").write_bytes(b"#" * (2 << 20))
    (store_repo / "latin1.yaml").write_bytes(b"datasets:\n  caf\xe9: {}\n")
    for args in (["sql", "SELECT 1", "--params", path], ["params", "check", "--params", path]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output, result.output


# --------------------------------------------------------------------------------------------
# a full disk in embed and discover


def _full_disk(monkeypatch, module, free: int = 0) -> None:
    usage = shutil.disk_usage("/")
    monkeypatch.setattr(module.shutil, "disk_usage", lambda path: usage._replace(free=free))


def test_a_full_disk_in_discovers_torch_save(tmp_path, monkeypatch):
    from lrd.discover import run as discover_run

    def failing(obj, path):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0\nPytorchStreamWriter failed writing file data/0: file write failed")

    _full_disk(monkeypatch, discover_run)
    with pytest.raises(OSError) as exc:
        discover_run._save(failing, {}, tmp_path / "checkpoint.pt")
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "checkpoint.pt")
    _full_disk(monkeypatch, discover_run, free=1 << 30)
    with pytest.raises(ModelError, match=r"checkpoint\.pt: cannot write the discover checkpoint \(PytorchStreamWriter failed .*Check the disk"):
        discover_run._save(failing, {}, tmp_path / "checkpoint.pt")


def test_a_full_disk_in_embeds_np_save(tmp_path, monkeypatch, capfd):
    """The whole stage: np.save's errno-less OSError becomes run_stage's one line about the disk."""
    from lrd.stage import run_stage
    from stages import embed as embed_stage

    def failing(*args, **kwargs):
        raise OSError("4096 requested and 0 written")

    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.setattr(embed_stage, "read_parquet", lambda *a, **k: None)
    monkeypatch.setattr(embed_stage, "embed_items", failing)
    _full_disk(monkeypatch, embed_stage)
    with pytest.raises(SystemExit) as exc:
        run_stage("embed", embed_stage.run)
    err = capfd.readouterr().err
    assert exc.value.code == 1 and "Traceback" not in err and "embed failed: the disk is full" in err, err
    _full_disk(monkeypatch, embed_stage, free=1 << 30)
    with pytest.raises(SystemExit):
        run_stage("embed", embed_stage.run)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "cannot write the item vectors (4096 requested and 0 written). Check the disk" in err, err


# --------------------------------------------------------------------------------------------
# the further probe: other odd files and values


@pytest.mark.parametrize("name, kind", [("item_meta.csv", "item metadata"), ("item_text.csv", "item text"), ("Office.item2index", "item index")])
def test_a_folder_where_a_file_is_expected(tmp_path, name, kind):
    folder = write_rechorus(tmp_path / "r", text=FULL_TEXT)
    if (folder / name).exists():
        (folder / name).unlink()
    (folder / name).mkdir()
    with pytest.raises(DataError, match=rf"{name}: a folder where the ReChorus {kind} .* file is expected"):
        _ingest("rechorus", folder, n_negatives=3)


@pytest.mark.parametrize("text, message", [("", "the file is empty"), ("id\ttext\n", "no lines after the header")])
def test_an_empty_or_header_only_text_file(tmp_path, text, message):
    with pytest.raises(DataError, match=rf"item_text\.csv: {message}\. Add the item text"):
        _ingest("rechorus", write_rechorus(tmp_path / "r", text=text), n_negatives=3)


def test_an_attribute_and_a_relation_of_one_name(tmp_path):
    folder = write_rechorus(tmp_path / "r", text=FULL_TEXT, meta_rows=["1\t1\t2\t[2]\t[]", "2\t1\t0\t[1]\t[]"])
    path = folder / "item_meta.csv"
    path.write_text(path.read_text().replace("i_category", "i_complement"))
    with pytest.raises(DataError, match=r"columns `i_complement` and `r_complement` would both be the relation `complement`"):
        _ingest("rechorus", folder, n_negatives=3)


@pytest.mark.parametrize("text, message", [
    ("", r"tiny\.item: the file is empty"),
    ("item_id:token,movie_title:token_seq\n1,A\n", r"tiny\.item: line 1 reads as one field split by ',': RecBole files are separated by tabs"),
])
def test_an_empty_or_comma_separated_recbole_item_file(tmp_path, text, message):
    folder = write_recbole(tmp_path / "raw", n_users=6, n_items=8, per_user=4, kg=False)
    next(folder.glob("*.item")).write_text(text)
    with pytest.raises(DataError, match=message):
        _ingest("recbole", folder, min_core=0, n_negatives=2)


def test_neighbors_says_nothing_of_the_default_k_on_a_small_store(store_repo):
    result = CliRunner().invoke(main, ["neighbors", "1"])
    assert result.exit_code == 0 and "more than" not in result.output, result.output
    empty = CliRunner().invoke(main, ["neighbors", ""])
    assert empty.exit_code == 2 and "give an ITEM or --text" in empty.output
