"""ingest: raw files -> validated canonical Parquet tables in data/processed/<dataset>/."""

import logging
import sys

from lrd.config.datasets import dataset_config

from lrd.config.ingest import IngestConfig
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.io import remove_leftovers
from lrd.stage import run_stage

log = logging.getLogger("lrd.ingest")


def run(params: dict, name: str | None = None) -> None:
    dataset = dataset_config(params, name)
    cfg = IngestConfig.from_params(params, dataset)
    remove_leftovers(dataset.paths.processed)
    log.info("reading %s (%s format) from %s", dataset.name, dataset.format, dataset.paths.raw)
    tables = ingest(read_dataset(dataset.format, dataset.paths.raw, cfg), cfg)
    tables.write(dataset.paths)
    s = tables.stats
    log.info(
        "%d users, %d items, %d interactions (train %d / dev %d / test %d), %d relation types, %d triples -> %s",
        s["users"], s["items"], s["interactions"], s["splits"]["train"], s["splits"]["dev"], s["splits"]["test"],
        s["relation_types"], sum(s["relations"].values()), dataset.paths.processed,
    )


if __name__ == "__main__":
    run_stage("ingest", lambda params: run(params, sys.argv[1] if len(sys.argv) > 1 else None))
