"""Training and evaluation speed of the relation-aware models against the compute floor.

Prints, per model: seconds per training epoch (timed over --batches batches and scaled to the
epoch), the FLOPs per epoch counted from the tensor shapes, this machine's measured matmul
throughput for the models' thin (N x 64) @ (64 x k) products in the same run, and the ratio
epoch / (FLOPs / throughput) (target <= 2). Also the cost per training interaction and
relation type (reference ReChorus KDA: ~80 us; target: at least 2x faster), and the time to
score 4,905 users x 100 candidates with 13 relation types (reference: ~43 s; target: 3x faster)
with its peak memory (target < 4 GiB).

    python benchmarks/bench_train.py                # ML-100K from data/processed (run ingest first)
    python benchmarks/bench_train.py --batches 20   # quicker
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from lrd.config.base import load_params

from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.discover import latent_names
from lrd.graph import RelationGraph
from lrd.models.batch import Batch
from lrd.models.lrd import LatentRelationDiscovery
from lrd.models.relational import RelationalRecommender
from lrd.sequences import Sequences
from lrd.train.data import DatasetTables, TrainingData
from lrd.train.trainer import autocast, autocast_dtype, optimizer_for


def matmul_rate(dtype: torch.dtype, n: int = 200_000, k: int = 64, reps: int = 20) -> float:
    """GFLOP/s of (n x 64) @ (64 x k), the shape the models are made of."""
    a, b = torch.randn(n, 64, dtype=dtype), torch.randn(64, k, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n * 64 * k * reps / (time.perf_counter() - t) / 1e9


def flops_per_row(r: int, h: int, d: int, layers: int, heads: int, c: int) -> float:
    """Forward FLOPs of one training row (c candidates) of the relational models."""
    rp = r + (-r) % 8  # channels padded to a multiple of 8
    first_level = c * r * (2 * h * d) * 2  # attention logits + context
    per_layer = c * rp * (5 * d * d) * 2 + c * heads * rp * rp * (d // heads) * 2 * 2
    return first_level + layers * per_layer


def time_training(model, data, amp, batches: int, batch_size: int, use_lrd: bool) -> float:
    opt = optimizer_for(model, 1e-3, 1e-6)
    it = data.epoch(np.random.default_rng(0), batch_size, True, use_lrd)
    model.train()
    for i, batch in enumerate(it):
        if i == 3:
            t = time.perf_counter()
        with autocast(torch.device("cpu"), amp):
            loss = model.losses(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i == batches + 2:
            break
    return (time.perf_counter() - t) / batches


def time_scoring(r_latent: int, users: int, amp, eval_users: int) -> tuple[float, float]:
    """Score `users` x 100 candidates on an Office-sized synthetic graph with 13 relation types."""
    import pyarrow as pa

    from lrd import schemas

    n_items = 2420
    names = ["any", "complement", "substitute", "category", "brand"]
    kinds = ["virtual", "item-item", "item-item", "attribute", "attribute"]
    types = pa.table({"id": pa.array(range(5), pa.int16()), "name": names, "kind": kinds}, schema=schemas.RELATION_TYPES)
    rng = np.random.default_rng(0)
    rel = pa.table({
        "head": pa.array(rng.integers(1, n_items + 1, 2000), pa.int32()),
        "relation": pa.array(np.r_[np.full(1000, 1), np.full(1000, 3)], pa.int16()),
        "tail": pa.array(np.r_[rng.integers(1, n_items + 1, 1000), np.zeros(1000, int)], pa.int32(), mask=np.r_[np.zeros(1000, bool), np.ones(1000, bool)]),
        "value": pa.array([None] * 1000 + [str(v) for v in rng.integers(0, 40, 1000)], pa.string()),
    }, schema=schemas.RELATIONS)
    graph = RelationGraph.from_tables(types, rel, n_items, latent=latent_names(r_latent))
    model = RelationalRecommender(graph, users, temporal=True).eval()
    hist = torch.from_numpy(rng.integers(1, n_items + 1, (users, 20)))
    cands = torch.from_numpy(rng.integers(1, n_items + 1, (users, 100)))
    gaps = torch.rand(users, 20) * 20
    t = time.perf_counter()
    with torch.inference_mode(), autocast(torch.device("cpu"), amp):
        for lo in range(0, users, eval_users):
            sl = slice(lo, lo + eval_users)
            model.scores(Batch(torch.arange(lo, min(lo + eval_users, users)) + 1, hist[sl], gaps[sl], cands[sl]))
    return time.perf_counter() - t, graph.n_relations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/processed/ml-100k")
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--models", default="rcf,rcf_lrd,kda,kda_lrd")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = ap.parse_args()
    params = load_params()
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    amp = autocast_dtype(args.precision, torch.device("cpu"))
    rate32, rate16 = matmul_rate(torch.float32), matmul_rate(torch.bfloat16)
    rate32_wide = matmul_rate(torch.float32, k=192)
    rate16_wide = matmul_rate(torch.bfloat16, k=192)
    print(f"threads: {torch.get_num_threads()}")
    print(f"matmul (200000x64)@(64x64) GFLOP/s: fp32 {rate32:.1f}, bf16 {rate16:.1f}; @(64x192): fp32 {rate32_wide:.1f}, bf16 {rate16_wide:.1f}")
    rate = (rate16_wide if amp == torch.bfloat16 else rate32_wide)
    print(f"precision: {amp or 'fp32'} (floor uses {rate:.1f} GFLOP/s)")

    tables = DatasetTables.load(Path(args.dataset))
    seqs = Sequences.from_table(tables.interactions, tables.n_users, tables.n_items)
    text = torch.randn(tables.n_items + 1, 384)
    for name in args.models.split(","):
        spec = cfg.spec(name)
        latent = latent_names(dcfg.latent_types) if spec.lrd else None
        graph = RelationGraph.from_tables(tables.relation_types, tables.relations, tables.n_items, kinds=cfg.model_relations, latent=latent)
        data = TrainingData(seqs, tables.candidates, cfg.history_max, graph)
        torch.manual_seed(0)
        lrd = LatentRelationDiscovery(text, cfg.dim, graph.n_relations) if spec.lrd else None
        model = RelationalRecommender(graph, tables.n_users, cfg.dim, cfg.layers, cfg.heads, temporal=spec.arch == "kda",
                                      kg_weight=0.5, lrd=lrd)
        per_batch = time_training(model, data, amp, args.batches, cfg.batch_size, spec.lrd)
        n_batches = -(-data.n_train // cfg.batch_size)
        epoch = per_batch * n_batches
        flops = 3 * flops_per_row(graph.n_relations, cfg.history_max, cfg.dim, cfg.layers, cfg.heads, 2) * data.n_train
        floor = flops / (rate * 1e9)
        us = epoch / (data.n_train * graph.n_relations) * 1e6
        print(f"{name}: R {graph.n_relations}, {data.n_train} rows, epoch {epoch:.1f} s, {flops / 1e12:.2f} TFLOP/epoch, "
              f"floor {floor:.1f} s, ratio {epoch / floor:.2f}, {us:.1f} us per interaction x relation type "
              f"(reference ~80 us: {80 / us:.1f}x faster)")
    seconds, r = time_scoring(8, 4905, amp, cfg.eval_users)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"scoring 4905 users x 100 candidates, {r} relation types: {seconds:.1f} s (reference ~43 s: {43 / seconds:.1f}x faster); "
          f"peak RSS of this process {peak:.2f} GiB")


if __name__ == "__main__":
    main()
