"""train <dataset> <model> <seed>: fit one model of params.yaml `models` with one seed.

Base models and static variants (`train.models`, `train.static_models`) read the processed
data (static variants also discover's latent table); +LRD models run as `train_lrd`.
Writes models/<ds>/<model>/<seed>/ (best weights, resume point) and
results/<ds>/<model>/<seed>/ (metrics.json, ranks.parquet, curve.csv).
Under torchrun (`torchrun --nproc-per-node N -m stages.train ...`, or `train.distributed: ddp`)
the run is one DDP rank of N.
"""

import logging
import sys

import torch

from lrd.config.datasets import dataset_config
from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.data.tables import DatasetTables
from lrd.experiment import prepare, train_run
from lrd.stage import parse_run_args, run_stage
from lrd.train import distributed

log = logging.getLogger("lrd.train")


def run(params: dict, dataset: str, name: str, seed: int, text=None) -> dict:
    paths = dataset_config(params, dataset).paths
    cfg = TrainConfig.from_params(params)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    with distributed.session(cfg.distributed, cfg.ddp_timeout) as ranks:
        m = train_run(prepare(name, seed, DatasetTables.load(paths), cfg, DiscoverConfig.from_params(params), paths, text, ranks))
        t = m["test"]
        log.info("%s/%s/%d: best epoch %d of %d (%s); test NDCG@5 %.4f HR@5 %.4f NDCG@10 %.4f HR@10 %.4f; %.1f s per epoch (training %.1f, ranking dev %.1f)", dataset, name,
                 seed, m["best_epoch"], m["epochs"], m["stopped_by"], t["NDCG@5"], t["HR@5"], t["NDCG@10"], t["HR@10"], m["seconds_per_epoch"],
                 m["train_seconds_per_epoch"], m["ranking_seconds_per_epoch"])
    return m


if __name__ == "__main__":
    dataset, name, seed = parse_run_args(sys.argv, "train")
    distributed.become_torchrun("stages.train", sys.argv[1:])
    run_stage("train", lambda params: run(params, dataset, name, seed))
