"""Ingest on RecBole files written by the test: tables, relations, text, errors, atomicity."""

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from lrd.config.base import build

from lrd.config.datasets import SourceConfig

from lrd.config.ingest import IngestConfig
from lrd.data import sampling
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.data.relations import bucket_labels, shared_value_pairs
from lrd.data.sources import fetch
from lrd.data.text import render
from lrd.errors import ConfigError, DataError
from lrd.io import sha256_file
from tests.conftest import tiny_params


def _cfg(**kw):
    return IngestConfig.from_params({"seed": 7, "ingest": {**tiny_params(Path("x"))["ingest"], **kw}})


def test_recbole_ingest_tables(recbole_dir):
    cfg = _cfg()
    result = ingest(read_dataset("recbole", recbole_dir, cfg), cfg)
    inter = result.interactions
    assert inter.num_rows == 40 * 12
    assert result.stats["users"] == 40 and result.stats["items"] == 30
    assert result.stats["splits"] == {"train": 400, "dev": 40, "test": 40}
    ts = inter.column("timestamp").to_numpy()
    users = inter.column("user").to_numpy()
    assert np.all(np.diff(ts) >= 0)  # chronological
    assert set(users) == set(range(1, 41))
    # every user's dev and test rows are their last two
    for u in (1, 17, 40):
        rows = inter.filter(pc.equal(inter.column("user"), u)).column("split").to_pylist()
        assert rows[-2:] == ["dev", "test"] and set(rows[:-2]) == {"train"}
    cand = result.candidates
    assert cand.num_rows == 80
    neg = np.asarray(cand.column("negatives").combine_chunks().flatten()).reshape(80, 5)
    seen = sampling.UserItemSet(users, inter.column("item").to_numpy(), 30)
    assert not seen.contains(cand.column("user").to_numpy(), neg).any()
    assert cand.column("split").to_pylist()[:40] == ["dev"] * 40


def test_ingest_is_deterministic(recbole_dir):
    cfg = _cfg()
    a = ingest(read_dataset("recbole", recbole_dir, cfg), cfg)
    b = ingest(read_dataset("recbole", recbole_dir, cfg), cfg)
    for name, table in a.tables().items():
        assert table.equals(b.tables()[name]), name
    other = IngestConfig.from_params({"seed": 8, "ingest": tiny_params(Path("x"))["ingest"]})
    c = ingest(read_dataset("recbole", recbole_dir, other), other)
    assert not a.candidates.equals(c.candidates)


def test_relations_from_attributes_and_kg(recbole_dir):
    cfg = _cfg()
    result = ingest(read_dataset("recbole", recbole_dir, cfg), cfg)
    types = result.relation_types.to_pylist()
    assert types[0] == {"id": 0, "name": "any", "kind": "virtual"}
    names = {t["name"]: t for t in types}
    assert names["sequel"]["kind"] == "item-item"
    assert names["shares_director"]["kind"] == "item-item"
    assert names["genres=Comedy"]["kind"] == "attribute" and names["year"]["kind"] == "attribute"
    rel = result.relations
    sequel = rel.filter(pc.equal(rel.column("relation"), names["sequel"]["id"]))
    # film3's sequel is not an item: dropped; the others link items 1->2, 2->3, 10->11.
    assert sorted(zip(sequel.column("head").to_pylist(), sequel.column("tail").to_pylist())) == [(1, 2), (2, 3), (10, 11)]
    director = rel.filter(pc.equal(rel.column("relation"), names["shares_director"]["id"]))
    pairs = set(zip(director.column("head").to_pylist(), director.column("tail").to_pylist()))
    assert (1, 7) in pairs and (7, 1) in pairs and (1, 2) not in pairs  # same director: i % 6
    year = rel.filter(pc.equal(rel.column("relation"), names["year"]["id"]))
    assert year.column("tail").null_count == year.num_rows  # attributes carry a value, no tail


def test_shared_value_pairs_and_cap():
    items = np.array([1, 2, 3, 4, 5, 1])
    values = np.array([7, 7, 7, 8, 8, 9])
    h, t = shared_value_pairs(items, values, max_items=5)
    assert sorted(zip(h.tolist(), t.tolist())) == [(1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (4, 5), (5, 4)]
    h, t = shared_value_pairs(items, values, max_items=2)  # value 7 (3 items) is skipped
    assert sorted(zip(h.tolist(), t.tolist())) == [(4, 5), (5, 4)]


def test_bucket_labels():
    labels = bucket_labels(np.array([1899, 1945, 1987, 1990, 1995, np.nan]), (1900, 1940, 1950, 1985, 1990))
    assert labels == ["<1900", "1940-1949", "1985-1989", "1990", "1995", None]


def test_text_template():
    row = {"title": "Toy Story", "year": 1995, "genres": ["Animation", "Comedy"]}
    assert render("{title}[ ({year})][. Genres: {genres}]", row) == "Toy Story (1995). Genres: Animation, Comedy"
    assert render("{title}[ ({year})][. Genres: {genres}]", {"title": "X", "year": None, "genres": []}) == "X"


def test_item_text_in_items_table(recbole_dir):
    cfg = _cfg()
    items = ingest(read_dataset("recbole", recbole_dir, cfg), cfg).items
    assert items.column_names[:4] == ["item", "raw_id", "title", "text"]
    first = items.slice(0, 1).to_pylist()[0]
    assert first["text"] == "Movie number 1 (1933). Genres: Comedy, Drama"


def test_unknown_template_column_is_a_config_error(recbole_dir):
    cfg = _cfg(text_template="{title} {directorr}")
    with pytest.raises(ConfigError, match="directorr"):
        ingest(read_dataset("recbole", recbole_dir, cfg), cfg)


# --- bad input ---------------------------------------------------------------------------


def test_missing_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(DataError, match=r"no RecBole interactions \(\.inter\) file"):
        read_dataset("recbole", tmp_path / "d", _cfg())


def test_missing_column(recbole_dir):
    path = recbole_dir / "tiny.inter"
    path.write_text(path.read_text().replace("timestamp:float", "time:float", 1))
    with pytest.raises(DataError, match=r"tiny\.inter: missing column\(s\) timestamp; the file has user_id:token, item_id:token, rating:float, time:float"):
        read_dataset("recbole", recbole_dir, _cfg())


def test_non_numeric_timestamp_names_the_line(recbole_dir):
    path = recbole_dir / "tiny.inter"
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit("\t", 1)[0] + "\tyesterday"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"tiny\.inter: line 6, column `timestamp:float`: 'yesterday' is not a number"):
        read_dataset("recbole", recbole_dir, _cfg())


def test_empty_after_filtering(recbole_dir):
    cfg = _cfg(min_core=100)
    with pytest.raises(DataError, match="no interaction survives 100-core filtering"):
        ingest(read_dataset("recbole", recbole_dir, cfg), cfg)


def test_link_naming_no_item(recbole_dir):
    path = recbole_dir / "tiny.link"
    path.write_text(path.read_text() + "999\tm.film999\n")
    with pytest.raises(DataError, match=r"tiny\.link: line 32: item '999' is not in 30 items"):
        read_dataset("recbole", recbole_dir, _cfg())


def test_unknown_kg_relation_lists_the_available_ones(recbole_dir):
    cfg = _cfg(kg_relations={"film.film.starring": "actor"})
    with pytest.raises(ConfigError, match="film.film.directed_by, film.film.sequel"):
        read_dataset("recbole", recbole_dir, cfg)


def test_unknown_attribute_column(recbole_dir):
    cfg = IngestConfig.from_params({"seed": 1, "ingest": {"n_negatives": 5, "attributes": {"colour": {}}}})
    with pytest.raises(ConfigError, match="`colour`"):
        ingest(read_dataset("recbole", recbole_dir, cfg), cfg)


def test_config_typos_are_reported():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) `ingest.min_cores`"):
        IngestConfig.from_params({"seed": 1, "ingest": {"min_cores": 5}})
    with pytest.raises(ConfigError, match="`ingest.n_negatives` must be int"):
        IngestConfig.from_params({"seed": 1, "ingest": {"n_negatives": "many"}})


# --- sources -------------------------------------------------------------------------------


def test_fetch_path_folder_and_zip_member(tmp_path, recbole_dir):
    out = fetch(SourceConfig(kind="path", path=str(recbole_dir)), tmp_path / "copy", tmp_path / "downloads")
    assert (out / "tiny.inter").read_bytes() == (recbole_dir / "tiny.inter").read_bytes()
    archive = tmp_path / "pkg.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in recbole_dir.iterdir():
            zf.write(f, f"pkg/data/tiny/{f.name}")
        zf.writestr("pkg/other.txt", "not me")
    src = SourceConfig(kind="path", path=str(archive), sha256=sha256_file(archive), member="pkg/data/tiny")
    out = fetch(src, tmp_path / "extracted", tmp_path / "downloads")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in recbole_dir.iterdir())


def test_checksum_mismatch(tmp_path):
    f = tmp_path / "data.zip"
    f.write_bytes(b"not the file you expected")
    with pytest.raises(DataError, match="sha256 is .*, expected 00ff"):
        fetch(SourceConfig(kind="path", path=str(f), sha256="00ff"), tmp_path / "out", tmp_path / "downloads")
    assert not (tmp_path / "out").exists()


def test_source_config_needs_a_checksum_for_downloads():
    with pytest.raises(ConfigError, match="sha256"):
        build(SourceConfig, {"kind": "url", "url": "https://example.org/x.zip"}, "dataset.source")


def test_failed_stage_leaves_previous_outputs(tmp_path, recbole_dir, monkeypatch):
    """Run the ingest stage, break the input, run again: the first outputs stay intact."""
    import yaml

    from stages import ingest as ingest_stage

    monkeypatch.chdir(tmp_path)
    params = tiny_params(recbole_dir)
    shutil.copytree(recbole_dir, Path("data/raw/tiny"))
    ingest_stage.run(params)
    before = {p.name: p.read_bytes() for p in Path("data/processed/tiny").iterdir()}
    inter = Path("data/raw/tiny/tiny.inter")
    inter.write_text(inter.read_text().replace("\t88", "\tx88", 1))
    with pytest.raises(DataError):
        ingest_stage.run(params)
    after = {p.name: p.read_bytes() for p in Path("data/processed/tiny").iterdir()}
    assert before == after
    assert [p.name for p in Path("data/processed").iterdir()] == ["tiny"]  # no temp folders left
    yaml  # noqa: B018 (imported for parity with the stage's own params reading)


def test_gapped_rechorus_ids_give_the_same_tables_and_relations(tmp_path):
    """Every id doubled (2, 4, ..., 100): after compaction, the same interactions, candidates and
    item-item relations as the contiguous original (a relation must name the right items)."""
    import re

    from benchmarks.amazon_like import generate

    src = generate(tmp_path / "a" / "A", n_users=80, n_items=50, seed=1)
    dst = tmp_path / "b" / "A"
    dst.mkdir(parents=True)
    double = lambda text: re.sub(r"\d+", lambda m: str(2 * int(m.group(0))), text)  # noqa: E731
    for f in src.iterdir():
        lines = f.read_text().splitlines()
        header, rows = lines[0].split("\t"), [line.split("\t") for line in lines[1:]]
        for row in rows:
            for i, name in enumerate(header):
                if name in ("item_id", "id", "neg_items") or name.startswith("r_") or (f.suffix == ".text" and i == 0):
                    row[i] = double(row[i])
        (dst / f.name).write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n")
    cfg = IngestConfig.from_params({})
    a = ingest(read_dataset("rechorus", src, cfg), cfg)
    b = ingest(read_dataset("rechorus", dst, cfg), cfg)
    assert a.relations.equals(b.relations) and a.interactions.equals(b.interactions) and a.candidates.equals(b.candidates)
    assert b.items.column("raw_id").to_pylist()[:3] == ["2", "4", "6"]
