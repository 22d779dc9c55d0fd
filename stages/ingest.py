"""ingest: raw files -> validated canonical Parquet tables in data/processed/<dataset>/."""

import logging

from lrd.config import IngestConfig, dataset_config
from lrd.data.ingest import ingest
from lrd.data.readers import read_dataset
from lrd.io import atomic_path, write_json, write_parquet
from lrd.stage import run_stage

log = logging.getLogger("lrd.ingest")


def run(params: dict) -> None:
    dataset = dataset_config(params)
    cfg = IngestConfig.from_params(params)
    log.info("reading %s (%s format) from %s", dataset.name, dataset.format, dataset.raw_dir)
    raw = read_dataset(dataset.format, dataset.raw_dir, cfg)
    result = ingest(raw, cfg)
    with atomic_path(dataset.processed_dir) as tmp:
        for name, table in result.tables().items():
            write_parquet(table, tmp / f"{name}.parquet", row_group_size=1 << 20)
        write_json(result.stats, tmp / "stats.json")
    s = result.stats
    log.info(
        "%d users, %d items, %d interactions (train %d / dev %d / test %d), %d relation types, %d triples -> %s",
        s["users"], s["items"], s["interactions"], s["splits"]["train"], s["splits"]["dev"], s["splits"]["test"],
        s["relation_types"], sum(s["relations"].values()), dataset.processed_dir,
    )


if __name__ == "__main__":
    run_stage("ingest", run)
