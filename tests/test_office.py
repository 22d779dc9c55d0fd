"""Office, the paper's headline dataset: the `files` source (per-file sha256, a mirror folder for
offline machines) and the real folder through ingest."""

import os
from pathlib import Path

import pytest
import yaml

from lrd.config.base import build
from lrd.config.datasets import SourceConfig, dataset_config
from lrd.config.ingest import IngestConfig
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.data.sources import MIRROR_ENV, fetch
from lrd.errors import ConfigError, DataError
from lrd.io import sha256_file

REPO = Path(__file__).resolve().parents[1]


def _files(folder: Path) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "a.csv").write_text("user_id\titem_id\ttime\n1\t2\t3\n")
    (folder / "b.text").write_text("id\ttext\nX\tan item\n")
    return {p.name: sha256_file(p) for p in folder.iterdir()}


def _source(url: str, files: dict, mirror: Path | None = None) -> SourceConfig:
    data = {"kind": "files", "url": url, "files": files, **({"mirror": str(mirror)} if mirror else {})}
    return build(SourceConfig, data, "datasets.x.source")


def test_files_from_a_mirror_fill_the_download_cache(tmp_path, monkeypatch):
    sums = _files(tmp_path / "mirror" / "x")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    source = _source((tmp_path / "nowhere").as_uri(), sums)
    out = fetch(source, tmp_path / "raw" / "x", tmp_path / "downloads")
    assert sorted(p.name for p in out.iterdir()) == ["a.csv", "b.text"]
    assert (out / "a.csv").read_bytes() == (tmp_path / "mirror/x/a.csv").read_bytes()
    monkeypatch.delenv(MIRROR_ENV)  # now from the cache alone
    assert (fetch(source, tmp_path / "raw2" / "x", tmp_path / "downloads") / "b.text").exists()


def test_files_from_the_url(tmp_path):
    sums = _files(tmp_path / "server")
    out = fetch(_source((tmp_path / "server").as_uri() + "/", sums), tmp_path / "raw" / "x", tmp_path / "downloads")
    assert (out / "b.text").read_bytes() == (tmp_path / "server/b.text").read_bytes()


def test_files_offline_without_a_mirror_names_both_ways(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    source = _source((tmp_path / "nowhere").as_uri() + "/", {"a.csv": "ab" * 32})
    with pytest.raises(DataError, match=f"cannot download .*a.csv.*no mirror folder is set.*`source.mirror`.*{MIRROR_ENV}"):
        fetch(source, tmp_path / "raw" / "x", tmp_path / "downloads")
    assert not (tmp_path / "raw" / "x").exists()


def test_a_mirror_file_with_another_checksum_is_refused(tmp_path):
    sums = _files(tmp_path / "mirror")
    (tmp_path / "mirror" / "a.csv").write_text("changed")
    with pytest.raises(DataError, match=r"mirror/a.csv: sha256 is .*, expected"):
        fetch(_source("https://example.org/", sums, tmp_path / "mirror"), tmp_path / "raw" / "x", tmp_path / "downloads")


@pytest.mark.parametrize("files, message", [
    ({"../a.csv": "ab" * 32}, "must be a plain file name"),
    ({"a.csv": "abc"}, "must be the file's sha256"),
])
def test_files_source_is_checked(files, message):
    with pytest.raises(ConfigError, match=message):
        _source("https://example.org/", files)
    with pytest.raises(ConfigError, match="`source.url`"):
        build(SourceConfig, {"kind": "files", "files": {"a.csv": "ab" * 32}}, "datasets.x.source")


def _office_folder() -> Path | None:
    for root in filter(None, (os.environ.get(MIRROR_ENV), str(REPO.parent / "shared" / "datasets"))):
        if (Path(root) / "Office" / "train.csv").exists():
            return Path(root)
    return None


@pytest.mark.skipif(_office_folder() is None, reason=f"no Office folder here ({MIRROR_ENV} or ../shared/datasets/Office)")
def test_real_office_folder_through_ingest(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(_office_folder()))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    dataset = dataset_config(params, "Office")
    folder = fetch(dataset.source, tmp_path / "raw" / "Office", tmp_path / "downloads")
    cfg = IngestConfig.from_params(params, dataset)
    stats = ingest(read_dataset(dataset.format, folder, cfg), cfg).stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (4905, 2420, 53258)
    assert stats["splits"] == {"train": 43448, "dev": 4905, "test": 4905}
    assert stats["relation_types"] == 4  # complement, substitute, category, brand
