"""embed: item text -> LLM vectors + FAISS index in data/embeddings/<dataset>/<model-slug>/."""

import logging

from lrd.config import EmbedConfig, dataset_config
from lrd.embed.pipeline import embed_items
from lrd.embed.store import store_dir
from lrd.io import atomic_path, read_parquet
from lrd.stage import run_stage

log = logging.getLogger("lrd.embed")


def run(params: dict) -> None:
    dataset = dataset_config(params)
    cfg = EmbedConfig.from_params(params)
    items = read_parquet(dataset.processed_dir / "items.parquet", "ingest")
    target = store_dir(dataset.name, cfg)
    # The stage's output is the dataset's whole embeddings folder, holding the current model's
    # store only; other models' vectors stay in the cache (data/embeddings/.cache).
    with atomic_path(target.parent) as tmp:
        manifest = embed_items(items, cfg, tmp / target.name, seed=params["seed"], previous=target)
    log.info(
        "%d items x %d dims (%d encoded, %d from cache%s), %s index -> %s",
        manifest["items"], manifest["dim"], manifest["encoded"], manifest["from_cache"],
        f", {manifest['items_per_second']} items/s" if manifest["items_per_second"] else "",
        manifest["index"]["type"], target,
    )


if __name__ == "__main__":
    run_stage("embed", run)
