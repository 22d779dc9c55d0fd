"""bf16 autocast against fp32: do the metrics match within seed noise, and what is it worth in time?

Trains --model (params.yaml settings) for --epochs epochs three times, each a whole
lrd.experiment run (prepare + train_run: training, dev evaluation every epoch, the best
epoch's dev and test ranks): bf16 with seed A, bf16 with seed B (the seed noise), fp32 with
seed A. Prints dev NDCG@5 per epoch of each, seconds per training epoch, and at the last epoch
|fp32 - bf16| against |bf16 seed A - bf16 seed B|, and the fp32 / bf16 time ratio.

bf16 autocast runs on any CPU, but without native bf16 (avx512_bf16 / amx_bf16) PyTorch
emulates it: the metrics still compare, the times then say nothing about a bf16 machine
(`cpu_native_bf16` says which case this is).

--dataset as bench_train.py: a processed folder (run ingest first; +LRD models read its embedding
store when there is one, else random vectors) or amazon-like. The runs write their weights and
results into a temporary folder (the processed tables are linked there), never into models/ or
results/.

    python benchmarks/bench_precision.py --epochs 5
    python benchmarks/bench_precision.py --dataset amazon-like --users 600 --items 300 --epochs 1   # smoke
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import report
from bench_train import dataset_paths, item_vectors

from lrd.config.base import load_params
from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.data.tables import DatasetTables
from lrd.experiment import prepare, train_run
from lrd.paths import Paths
from lrd.train.device import cpu_has_bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/processed/ml-100k", help="a processed folder, or amazon-like")
    ap.add_argument("--users", type=int, default=4900, help="amazon-like only: users to generate")
    ap.add_argument("--items", type=int, default=2400, help="amazon-like only: items to generate")
    ap.add_argument("--model", default="kda")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seeds", default="2019,2020", help="seed A, seed B")
    ap.add_argument("--threads", type=int, default=None, help="default: train.threads, else torch's choice")
    args = ap.parse_args()

    params = load_params()
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    # Exactly --epochs epochs: no early stop before them.
    cfg = dataclasses.replace(cfg, max_epochs=args.epochs, stopping="patience", patience=args.epochs,
                              threads=args.threads or cfg.threads)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_a, seed_b = (int(s) for s in args.seeds.split(","))
    report("threads", torch.get_num_threads())
    report("cpu_native_bf16", cpu_has_bf16())
    if not cpu_has_bf16() and not torch.cuda.is_available():
        report("note", "no native bf16 on this CPU: bf16 autocast is emulated, its times are not those of a bf16 machine")

    with tempfile.TemporaryDirectory(prefix="bench_precision_") as tmp_name:
        tmp = Path(tmp_name)
        source = dataset_paths(args.dataset, params, tmp / "generated", args.users, args.items)
        tables = DatasetTables.load(source)
        text = item_vectors(source, params, tables.n_items)[0] if cfg.model(args.model, dcfg).lrd else None
        runs = {}
        variants = (("bf16_seed_a", seed_a, "bf16"), ("bf16_seed_b", seed_b, "bf16"), ("fp32_seed_a", seed_a, "fp32"))
        for label, seed, precision in variants:
            # Each run its own root (the processed tables linked in), so that fp32 and bf16 with the
            # same seed never find each other's resume point.
            paths = Paths(source.dataset, root=tmp / label)
            paths.processed.parent.mkdir(parents=True)
            paths.processed.symlink_to(source.processed.resolve(), target_is_directory=True)
            run = prepare(args.model, seed, tables, dataclasses.replace(cfg, precision=precision), dcfg, paths, text)
            metrics = train_run(run)
            with open(paths.run_curve(args.model, seed)) as f:
                dev = [float(row["dev_NDCG@5"]) for row in csv.DictReader(f)]
            runs[label] = (dev, metrics)
            report(f"{label}_precision", metrics["precision"])
            report(f"{label}_dev_ndcg5_by_epoch", " ".join(f"{v:.4f}" for v in dev))
            report(f"{label}_seconds_per_train_epoch", metrics["train_seconds_per_epoch"])
            report(f"{label}_test_ndcg5_at_best_dev_epoch", metrics["test"]["NDCG@5"])
        last = {label: dev[-1] for label, (dev, _) in runs.items()}
        precision_gap = abs(last["fp32_seed_a"] - last["bf16_seed_a"])
        seed_noise = abs(last["bf16_seed_a"] - last["bf16_seed_b"])
        report("last_epoch_dev_ndcg5_abs_fp32_minus_bf16", precision_gap)
        report("last_epoch_dev_ndcg5_seed_noise_bf16", seed_noise)
        report("fp32_over_bf16_seconds_per_epoch",
               runs["fp32_seed_a"][1]["train_seconds_per_epoch"] / max(runs["bf16_seed_a"][1]["train_seconds_per_epoch"], 1e-9))
        report("meets_target", precision_gap <= seed_noise)  # one pair of seeds: a hint, not a test


if __name__ == "__main__":
    main()
