"""`embed.engine: ray`: encoding item texts as a Ray Data job (imported only when chosen).

The embedding job: the driver writes the texts to encode as Parquet shards, a pool of encoder
actors (a model each; one GPU each on a cluster that has GPUs) reads a shard, encodes it and
writes its vectors as a Parquet shard, and the driver reads the vectors back for the cache and
the store, exactly as the local engine hands them over. The shards live in a folder under the
vector cache: on a multi-node cluster, `data/` must be on storage every node mounts at the same path.
"""

from __future__ import annotations

import logging
import math
import shutil
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lrd.cluster import connect, ray_job
from lrd.config.embed import EmbedConfig
from lrd.errors import ConfigError
from lrd.io import atomic_path

log = logging.getLogger(__name__)

SHARDS_PER_WORKER = 4  # enough shards to even out the workers' loads, few enough to keep per-shard costs small


def worker_plan(ray, workers: int | None, device: str) -> tuple[int, dict, str]:
    """(actors, their resources, their torch device) for a pool on this cluster: a GPU each where
    the cluster has GPUs (unless `device: cpu`), else the CPUs shared out."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if device.startswith("cuda") and not gpus:
        raise ConfigError(f"params.yaml: `embed.device` is {device}, but the Ray cluster has no GPU; use auto or cpu")
    if device == "mps":
        raise ConfigError("params.yaml: `embed.device: mps` is a local device; with `embed.engine: ray` use auto, cpu or cuda")
    if gpus and device != "cpu":
        return workers or gpus, {"num_gpus": 1}, "cuda"
    workers = workers or cpus
    return workers, {"num_cpus": max(1, cpus // workers)}, "cpu"


class ShardEncoder:
    """A Ray actor: one encoder, loaded once; each call encodes one shard of texts into a shard of vectors."""

    def __init__(self, cfg: EmbedConfig, path: str, device: str, threads: int | None):
        import torch

        from lrd.embed.encoders import load_encoder

        if threads:
            torch.set_num_threads(threads)
        self.encoder = load_encoder(cfg, Path(path), device)

    def __call__(self, batch: dict) -> dict:
        for source, target in zip(batch["texts"], batch["vectors"]):
            shard = pq.read_table(source)
            vectors = self.encoder.encode(shard.column("text").to_pylist(), progress=False)
            flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1])
            with atomic_path(target) as tmp:  # a retried shard (its worker killed) replaces, never half-writes
                pq.write_table(pa.table({"row": shard.column("row"), "vector": flat}), tmp)
        return {"vectors": batch["vectors"]}


def encode(cfg: EmbedConfig, path: Path, texts: list[str], staging_root: Path) -> tuple[np.ndarray, int, list[str]]:
    """Encode `texts` on the Ray cluster. Returns (vectors in the order of `texts`, dim, the workers as device names)."""
    ray = connect("embed.engine")
    workers, resources, device = worker_plan(ray, cfg.ray_workers, cfg.device)
    shard_rows = max(cfg.batch_size, math.ceil(len(texts) / (workers * SHARDS_PER_WORKER)))
    # Absolute paths: Ray workers do not run in this directory.
    staging = Path(staging_root).resolve() / f".ray-{uuid.uuid4().hex[:12]}"
    try:
        shards = []
        for i, lo in enumerate(range(0, len(texts), shard_rows)):
            source, target = staging / "texts" / f"part-{i:05d}.parquet", staging / "vectors" / f"part-{i:05d}.parquet"
            source.parent.mkdir(parents=True, exist_ok=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            rows = np.arange(lo, min(lo + shard_rows, len(texts)), dtype=np.int64)
            pq.write_table(pa.table({"row": rows, "text": texts[lo : lo + shard_rows]}), source)
            shards.append({"texts": str(source), "vectors": str(target)})
        workers = min(workers, len(shards))
        log.info("encoding %d texts in %d shards on %d Ray worker(s) (%s)", len(texts), len(shards), workers, device)
        # Shard paths in, shard paths out: the actors read and write the Parquet themselves, so the
        # job holds no read or write tasks that could wait for CPUs the actors hold on a small cluster.
        job = ray.data.from_items(shards, override_num_blocks=len(shards)).map_batches(
            ShardEncoder, batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"cfg": cfg, "path": str(Path(path).resolve()), "device": device,
                                   "threads": resources.get("num_cpus")}, **resources)
        with ray_job("encoding item texts"):
            job.take_all()
        vectors = None
        for shard in shards:  # one shard in memory at a time, beside the result
            table = pq.read_table(shard["vectors"])
            column = table.column("vector").combine_chunks()
            block = column.flatten().to_numpy().reshape(len(table), column.type.list_size)
            if vectors is None:
                vectors = np.empty((len(texts), block.shape[1]), np.float32)
            vectors[table.column("row").to_numpy()] = block
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return vectors, vectors.shape[1], [f"ray:{device}"] * workers
