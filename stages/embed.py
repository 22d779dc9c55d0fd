"""embed: item text -> LLM vectors + FAISS index in data/embeddings/<dataset>/<model-slug>/."""

import logging
import sys

from lrd.config.base import shared_config

from lrd.config.datasets import dataset_config

from lrd.config.embed import EmbedConfig
from lrd.embed.pipeline import embed_items
from lrd.embed.store import store_dir
from lrd.io import atomic_path, read_parquet, remove_leftovers, write_json
from lrd.stage import run_stage

log = logging.getLogger("lrd.embed")


def run(params: dict, dataset: str | None = None) -> None:
    dataset = dataset_config(params, dataset)
    cfg = EmbedConfig.from_params(params)
    paths = dataset.paths
    remove_leftovers(paths.embeddings, paths.embed_metrics)
    items = read_parquet(paths.table("items"), "ingest")
    target = store_dir(paths, cfg)
    # The stage's output is the dataset's whole embeddings folder, holding the current model's
    # store only; other models' vectors stay in the cache.
    with atomic_path(paths.embeddings) as tmp:
        manifest = embed_items(items, cfg, tmp / target.name, paths.embedding_cache, seed=shared_config(params).seed, previous=target)
    write_json({k: manifest[k] for k in ("model", "items", "dim", "encoded", "from_cache", "device", "encode_seconds",
                                         "items_per_second", "seconds")}, paths.embed_metrics)
    log.info(
        "%d items x %d dims (%d encoded, %d from cache%s), %s index -> %s",
        manifest["items"], manifest["dim"], manifest["encoded"], manifest["from_cache"],
        f", {manifest['items_per_second']} items/s" if manifest["items_per_second"] else "",
        manifest["index"]["type"], target,
    )


if __name__ == "__main__":
    run_stage("embed", lambda params: run(params, sys.argv[1] if len(sys.argv) > 1 else None))
