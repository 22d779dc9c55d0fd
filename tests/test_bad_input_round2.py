"""The second bad-input probe (issue 22): one regression test per case. Each bad input ends in
one clear error naming the file or field and the fix, or is handled and said so."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from lrd.config.base import load_params
from lrd.config.check import check_params
from lrd.errors import ConfigError, DataError
from tests.test_bad_input import _edit_line, _ingest
from tests.test_readers import FULL_TEXT, write_rechorus

REPO = Path(__file__).resolve().parents[1]


def _folder(tmp_path: Path) -> Path:
    return write_rechorus(tmp_path / "r", text=FULL_TEXT)


# --------------------------------------------------------------------------------------------
# ReChorus files


def test_repeated_train_rows_are_dropped_counted_and_logged(tmp_path, caplog):
    folder = _folder(tmp_path)
    path = folder / "train.csv"
    path.write_text(path.read_text() + path.read_text().splitlines()[1] + "\n")
    with caplog.at_level(logging.WARNING):
        result = _ingest("rechorus", folder)
    assert "1 row(s) repeat an earlier row exactly" in caplog.text
    assert result.stats["splits"]["train"] == 6 and result.stats["notes"]["train_rows_repeated_dropped"] == 1


@pytest.mark.parametrize("edit, message", [
    (("train.csv", None, "1\t5\t32503680000"), r"dev\.csv: line 2: user 1's dev row is at time 200, before their train row at 32503680000"),
    (("train.csv", None, "1\t5\t-100"), r"train\.csv: line 8, column `time`: -100 is before 1970"),
    (("dev.csv", 2, "1\t3\t50\t[5, 6, 5]"), r"dev\.csv: line 2: user 1's dev row is at time 50, before their train row at 110"),
])
def test_times_out_of_order_with_the_split(tmp_path, edit, message):
    folder = _folder(tmp_path)
    name, line, text = edit
    path = folder / name
    if line is None:
        path.write_text(path.read_text() + text + "\n")
    else:
        _edit_line(path, line, text)
    with pytest.raises(DataError, match=message):
        _ingest("rechorus", folder)


def test_an_attribute_column_of_nan_gives_no_relation(tmp_path, caplog):
    folder = _folder(tmp_path)
    path = folder / "item_meta.csv"
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    path.write_text("\n".join("\t".join([r[0], "NaN" if i else r[1], *r[2:]]) for i, r in enumerate(rows)) + "\n")
    with caplog.at_level(logging.WARNING):
        result = _ingest("rechorus", folder)
    assert "column `i_category` holds no value" in caplog.text
    assert "category" not in result.relation_types.column("name").to_pylist()
    assert "NaN" not in (result.relations.column("value").to_pylist())


@pytest.mark.parametrize("negatives", ["[[5, 6, 5]]", "[5, 6, 5", "5, 6, 5"])
def test_malformed_negative_lists(tmp_path, negatives):
    folder = _folder(tmp_path)
    _edit_line(folder / "dev.csv", 2, f"1\t3\t200\t{negatives}")
    with pytest.raises(DataError, match=r"dev\.csv: line 2, column `neg_items`: .* is not a list of integer ids like \[12, 57, 3\]"):
        _ingest("rechorus", folder)


@pytest.mark.parametrize("split", ["train", "dev"])
def test_a_split_file_with_only_its_header(tmp_path, split):
    folder = _folder(tmp_path)
    path = folder / f"{split}.csv"
    path.write_text(path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match=rf"{split}\.csv: no rows after the header; the {split} split needs its interactions"):
        _ingest("rechorus", folder)


@pytest.mark.parametrize("separator", [",", " "])
def test_a_file_with_another_separator_says_so(tmp_path, separator):
    folder = _folder(tmp_path)
    path = folder / "train.csv"
    path.write_text(path.read_text().replace("\t", separator))
    with pytest.raises(DataError, match=rf"train\.csv: .*one column split by {separator!r}: this file must be separated by '\\t'"):
        _ingest("rechorus", folder)


# --------------------------------------------------------------------------------------------
# params.yaml as a whole


def _params() -> dict:
    return load_params(REPO / "params.yaml")


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(trian={"seeds": [1]}), r"unknown top-level key\(s\) `trian`"),
    (lambda p: p["train"].update(foo=1), r"unknown key\(s\) `train.foo`"),
    (lambda p: p["train"].update(ddp_timeout=float("nan")), r"`train.ddp_timeout` is nan; it must be a finite number"),
    (lambda p: p["train"].update(lrd_weight=float("inf")), r"`train.lrd_weight` is inf; it must be a finite number"),
    (lambda p: p["discover"].update(alpha=float("inf")), r"`discover.alpha` is inf"),
    (lambda p: p["train"].update(l2=float("inf")), r"`train.l2` is inf"),
    (lambda p: p["train"].update(seeds=[2019, 2019]), r"`train.seeds` lists a seed twice"),
    (lambda p: p["train"].update(seeds=[99999999999999999999]), r"`train.seeds` is 99999999999999999999; it must be >= 0 and < 2147483648"),
    (lambda p: p["train"].update(seeds=[4294967296]), r"`train.seeds` is 4294967296"),
    (lambda p: p["train"].update(seeds="2019"), r"`train.seeds` must be a list, got '2019'"),
    (lambda p: p.update(train=[1, 2]), r"`train` must be a mapping"),
    (lambda p: p.update(models=["kda"]), r"`models` must map model names to their settings"),
    (lambda p: p.update(dim=10_000_000), r"`dim` is 10000000; it must be >= 1 and <= 4096"),
    (lambda p: p["discover"].update(latent_types=100_000), r"`discover.latent_types` is 100000"),
    (lambda p: p.update(history_max=100_000), r"`history_max` is 100000"),
    (lambda p: p["datasets"].update({"a b": p["datasets"]["ml-100k"]}), r"dataset name 'a b' must be a plain folder name"),
    (lambda p: p["datasets"].update({"..": p["datasets"]["ml-100k"]}), r"dataset name '\.\.' must be a plain folder name"),
    (lambda p: p["datasets"].update({1: p["datasets"]["ml-100k"], "1": p["datasets"]["ml-100k"]}), r"dataset '1' is named twice"),
])
def test_params_are_checked_as_a_whole(change, message):
    params = _params()
    change(params)
    with pytest.raises(ConfigError, match=message):
        check_params(params)


def test_the_repository_params_pass_the_check():
    train = check_params(_params())
    assert "kda_lrd" in train.lrd_models


def test_params_check_command():
    result = CliRunner().invoke(__import__("lrd.cli", fromlist=["main"]).main, ["params", "check", "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 0 and ": ok (" in result.output


def test_a_summary_without_models_is_a_sentence_not_a_broken_table():
    from lrd.compare import paper_table

    text = paper_table({"tiny": {}}, [])
    assert "|" not in text and "No finished run" in text


# --------------------------------------------------------------------------------------------
# damaged outputs read back


def test_damaged_json_outputs_name_the_file_and_the_fix(tmp_path):
    from lrd.compare import load_runs
    from lrd.data.tables import DatasetTables
    from lrd.paths import Paths

    paths = Paths("tiny", tmp_path)
    paths.run_metrics("kda", 1).parent.mkdir(parents=True)
    paths.run_metrics("kda", 1).write_text("{oops")
    with pytest.raises(DataError, match=r"kda/1/metrics.json is not valid JSON .*re-run that cell \(`dvc repro -f <stage>` of tiny-kda-1"):
        load_runs(paths, ["kda"])
    paths.stats.parent.mkdir(parents=True)
    paths.stats.write_text("[]")
    with pytest.raises(DataError, match=r"stats.json holds a list, not a JSON object: re-run `dvc repro -f ingest@tiny`"):
        DatasetTables.load(paths)


def test_a_corrupt_store_manifest(tmp_path):
    from lrd.embed.store import EmbeddingStore

    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(DataError, match=r"manifest.json is not valid JSON .*dvc repro -f embed@"):
        EmbeddingStore.open(tmp_path)


def test_truncated_ranks_and_garbage_weights(tmp_path):
    from lrd.compare import user_ndcg5
    from lrd.paths import Paths
    from lrd.train.checkpoint import load_weights, save_file

    paths = Paths("tiny", tmp_path)
    ranks = paths.run_ranks("kda", 1)
    ranks.parent.mkdir(parents=True)
    pq.write_table(pa.table({"split": ["test"] * 50, "user": list(range(50)), "rank": [1] * 50}), ranks)
    ranks.write_bytes(ranks.read_bytes()[:-40])
    with pytest.raises(DataError, match=r"ranks.parquet is not a readable Parquet file .*re-run the cell tiny-kda-1"):
        user_ndcg5(paths, "kda", 1)
    best = tmp_path / "best.pt"
    best.write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match=r"best.pt is not a readable weights file .*: run it again"):
        load_weights(best, "run it again")
    save_file({"w": torch.zeros(2)}, best)
    assert torch.equal(load_weights(best, "x")["w"], torch.zeros(2))
    save_file({"w": [1, 2]}, best)
    with pytest.raises(DataError, match="holds no state dict of tensors"):
        load_weights(best, "x")


def test_a_raw_vector_file_read_with_the_wrong_dimension_and_type(tmp_path):
    from lrd.embed.vector_file import _read_raw

    rng = np.random.default_rng(0)
    path = tmp_path / "Tiny.feat.GPT"
    rng.standard_normal((60, 16)).astype(np.float64).tofile(path)
    with pytest.raises(DataError, match=r"read as 32-d float32 rows, .* all zeros, NaN or beyond 1e6: .*check `embed.vector_dim` and `embed.feat_dtype`"):
        _read_raw(path, 32, "float32", 60)
    ids, take = _read_raw(path, 16, "float64", 60)  # the right reading
    assert len(ids) == 60 and np.isfinite(take(np.arange(60))).all()


# --------------------------------------------------------------------------------------------
# faults and the CLI


def test_a_read_only_output_is_one_line(capfd):
    from lrd.stage import run_stage

    def write(params):
        raise PermissionError(errno.EACCES, "Permission denied", "results/tiny/kda/1/metrics.json")

    with pytest.raises(SystemExit) as exc:
        run_stage("train", write, params_path=str(REPO / "params.yaml"))
    err = capfd.readouterr().err
    assert exc.value.code == 1 and "Traceback" not in err
    assert "cannot write results/tiny/kda/1/metrics.json (Permission denied)" in err and "Make that folder writable" in err


@pytest.mark.parametrize("args, message", [
    (["neighbors", "1", "--k", "0"], "0 is not in the range x>=1"),
    (["neighbors", "1", "--k", "-1"], "-1 is not in the range x>=1"),
    (["neighbors", "1", "--text", "pen"], "give an ITEM or --text, not both"),
    (["sql", "-- nothing"], "QUERY holds no SQL statement"),
])
def test_cli_usage_errors(args, message):
    from lrd.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.output, result.output
