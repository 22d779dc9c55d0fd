"""embed: item text -> LLM vectors + FAISS index in data/embeddings/<dataset>/<model-slug>/."""

import errno
import logging
import os
import shutil
import sys
from pathlib import Path

from lrd.config.base import shared_config

from lrd.config.datasets import dataset_config

from lrd.config.embed import EmbedConfig
from lrd.embed.pipeline import embed_items
from lrd.embed.store import store_dir
from lrd.errors import DataError
from lrd.io import atomic_path, read_parquet, remove_leftovers, write_json
from lrd.stage import run_stage

log = logging.getLogger("lrd.embed")
FULL_DISK_BYTES = 1 << 20  # less free space than this after a failed write: the disk filled up


def run(params: dict, dataset: str | None = None) -> None:
    dataset = dataset_config(params, dataset)
    cfg = EmbedConfig.from_params(params)
    paths = dataset.paths
    remove_leftovers(paths.embeddings, paths.embed_metrics, paths.embed_identity)
    items = read_parquet(paths.table("items"), "ingest")
    target = store_dir(paths, cfg)
    # The stage's output is the dataset's whole embeddings folder, holding the current model's
    # store only; other models' vectors stay in the cache.
    with atomic_path(paths.embeddings) as tmp:
        try:
            manifest = embed_items(items, cfg, tmp / target.name, paths.embedding_cache, seed=shared_config(params).seed, previous=target)
        except OSError as exc:
            problem = _short_write(exc, tmp)
            if problem is None:
                raise
            raise problem from None
    write_json(manifest["vectors_identity"], paths.embed_identity)
    write_json({k: manifest[k] for k in ("model", "items", "dim", "encoded", "from_cache", "device", "encode_seconds",
                                         "items_per_second", "seconds")}, paths.embed_metrics)
    log.info(
        "%d items x %d dims (%d encoded, %d from cache%s), %s index -> %s",
        manifest["items"], manifest["dim"], manifest["encoded"], manifest["from_cache"],
        f", {manifest['items_per_second']} items/s" if manifest["items_per_second"] else "",
        manifest["index"]["type"], target,
    )


def _short_write(exc: OSError, folder: Path) -> Exception | None:
    """np.save's failed write ("800 requested and 0 written") carries no errno: the OSError the
    stage reports as a full disk when the disk filled up, else one line; None for other errors.
    (Checked before atomic_path removes the partial files and frees the space again.)"""
    if exc.errno is not None or "requested and" not in str(exc):
        return None
    if shutil.disk_usage(folder if folder.exists() else folder.parent).free < FULL_DISK_BYTES:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))
    return DataError(f"{folder}: cannot write the item vectors ({exc}). Check the disk, then run again.")


if __name__ == "__main__":
    run_stage("embed", lambda params: run(params, sys.argv[1] if len(sys.argv) > 1 else None))
