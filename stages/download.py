"""download: fetch the raw dataset named in params.yaml into data/raw/<dataset>/."""

import logging
import sys

from lrd.config.datasets import dataset_config
from lrd.data.sources import fetch
from lrd.io import remove_leftovers
from lrd.stage import run_stage

log = logging.getLogger("lrd.download")


def run(params: dict, name: str | None = None) -> None:
    dataset = dataset_config(params, name)
    remove_leftovers(dataset.paths.raw)
    dest = fetch(dataset.source, dataset.paths.raw, dataset.paths.downloads)
    files = sorted(p for p in dest.rglob("*") if p.is_file())
    log.info("%s: %d files, %.1f MB in %s", dataset.name, len(files), sum(p.stat().st_size for p in files) / 1e6, dest)


if __name__ == "__main__":
    run_stage("download", lambda params: run(params, sys.argv[1] if len(sys.argv) > 1 else None))
