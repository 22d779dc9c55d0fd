"""download: fetch the raw dataset named in params.yaml into data/raw/<dataset>/."""

import logging

from lrd.config import dataset_config
from lrd.data.sources import fetch
from lrd.stage import run_stage

log = logging.getLogger("lrd.download")


def run(params: dict) -> None:
    dataset = dataset_config(params)
    dest = fetch(dataset.source, dataset.raw_dir)
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    log.info("%s: %d files, %.1f MB in %s", dataset.name, len(files), size / 1e6, dest)


if __name__ == "__main__":
    run_stage("download", run)
