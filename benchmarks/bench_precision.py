"""bf16 autocast against fp32: do the metrics match within seed noise?

Trains KDA (the default params.yaml settings) for --epochs epochs three times on ML-100K: bf16
with seed A, bf16 with seed B (the seed noise), fp32 with seed A, and prints dev NDCG@5 per
epoch for each, the time per epoch, and |fp32 - bf16| against |bf16 seed A - bf16 seed B| at
the last epoch. Run ingest (and discover, for +LRD models) first.

    python benchmarks/bench_precision.py --epochs 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from lrd.config.base import load_params

from lrd.config.datasets import dataset_config

from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.sequences import Sequences
from lrd.train.build import build_model, relation_graph
from lrd.train.data import DatasetTables, TrainingData
from lrd.train.trainer import FitSettings, fit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="kda")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", default="2019,2020")
    args = ap.parse_args()
    params = load_params()
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    spec = cfg.spec(args.model)
    tables = DatasetTables.load(dataset_config(params).processed_dir)
    graph = relation_graph(spec, cfg, dcfg, tables, Path("data/relations") / dataset_config(params).name / "latent.parquet")
    data = TrainingData(Sequences.from_table(tables.interactions, tables.n_users, tables.n_items), tables.candidates, cfg.history_max, graph)
    seed_a, seed_b = (int(s) for s in args.seeds.split(","))
    runs = {}
    for label, seed, amp in (("bf16 seed A", seed_a, torch.bfloat16), ("bf16 seed B", seed_b, torch.bfloat16), ("fp32 seed A", seed_a, None)):
        torch.manual_seed(seed)
        model = build_model(spec, cfg, dcfg, tables, graph, None)
        s = FitSettings(lr=spec.lr, l2=cfg.l2, batch_size=cfg.batch_size, max_epochs=args.epochs, patience=args.epochs,
                        eval_users=cfg.eval_users, use_kg=graph is not None and graph.n_triples > 0, use_lrd=False, amp=amp)
        t = time.perf_counter()
        result = fit(model, data, s, seed, Path(f"/tmp/bench_precision_{seed}.pt"), label=label)
        runs[label] = result
        dev = [round(r["dev_NDCG@5"], 4) for r in result.curve]
        print(f"{label}: dev NDCG@5 by epoch {dev}; {result.seconds_per_epoch:.1f} s per training epoch; "
              f"test NDCG@5 at best dev epoch {result.test['NDCG@5']:.4f} ({time.perf_counter() - t:.0f} s)", flush=True)
    last = {k: r.curve[-1]["dev_NDCG@5"] for k, r in runs.items()}
    print(f"last-epoch dev NDCG@5: |fp32 - bf16| = {abs(last['fp32 seed A'] - last['bf16 seed A']):.4f}, "
          f"seed noise |bf16 A - bf16 B| = {abs(last['bf16 seed A'] - last['bf16 seed B']):.4f}; "
          f"fp32 / bf16 time per epoch = {runs['fp32 seed A'].seconds_per_epoch / runs['bf16 seed A'].seconds_per_epoch:.2f}")


if __name__ == "__main__":
    main()
