"""discover: train LRD standalone, label candidate item pairs with latent relation types.

Writes data/relations/<dataset>/{latent,relation_types}.parquet, models/discover/checkpoint.pt,
metrics/discover.json and plots/discover.csv.
"""

import logging
import sys

from lrd.config.datasets import dataset_config

from lrd.config.embed import EmbedConfig

from lrd.config.train import DiscoverConfig
from lrd.data.tables import DatasetTables
from lrd.discover.run import discover
from lrd.embed.store import EmbeddingStore, store_dir
from lrd.io import remove_leftovers
from lrd.stage import run_stage

log = logging.getLogger("lrd.discover")


def run(params: dict, dataset: str | None = None) -> None:
    paths = dataset_config(params, dataset).paths
    cfg = DiscoverConfig.from_params(params)
    remove_leftovers(paths.latent, paths.relation_types, paths.discover_model, paths.discover_metrics, paths.discover_curve)
    store = EmbeddingStore.open(store_dir(paths, EmbedConfig.from_params(params)))
    m = discover(DatasetTables.load(paths), store, cfg, paths)
    nmi = m["nmi_latent_vs_predefined"]
    log.info("%d pairs labelled -> %s; held-out reconstruction accuracy %.3f, NMI with predefined types %s, "
             "%d of %d items without a predefined item-item relation gained a confident latent one",
             m["pairs"], paths.latent, m["reconstruction_accuracy"], f"{nmi:.3f}" if nmi is not None else "n/a",
             m["items_gaining_latent_relation"], m["items_without_predefined_relation"])
    r = m["readout"]
    known = r.get("known")
    log.info("%d of %d latent types carry confident pairs, %d of them above chance on some attribute%s (readout in %s)",
             r["types_used"], len(r["types"]), r["types_above_chance"],
             f"; known relations confident: {known['found']} of {known['matched']}" if known else "", paths.discover_metrics)


if __name__ == "__main__":
    run_stage("discover", lambda params: run(params, sys.argv[1] if len(sys.argv) > 1 else None))
