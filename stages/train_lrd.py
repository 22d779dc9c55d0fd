"""train_lrd <dataset> <model> <seed>: fit one +LRD model (`train.lrd_models`) with one seed.

The same run as `train`, with the item vectors of the embedding store for the LRD module.
"""

import sys

from lrd.config.datasets import dataset_config
from lrd.config.embed import EmbedConfig
from lrd.data.tables import DatasetTables
from lrd.embed.store import open_store
from lrd.stage import parse_run_args, run_stage
from lrd.train import distributed
from stages import train


def run(params: dict, dataset: str, name: str, seed: int) -> dict:
    paths = dataset_config(params, dataset).paths
    n_items = DatasetTables.load(paths).n_items
    text = open_store(paths, EmbedConfig.from_params(params)).matrix(n_items)
    return train.run(params, dataset, name, seed, text)


if __name__ == "__main__":
    dataset, name, seed = parse_run_args(sys.argv, "train_lrd")
    distributed.become_torchrun("stages.train_lrd", sys.argv[1:])
    run_stage("train_lrd", lambda params: run(params, dataset, name, seed))
