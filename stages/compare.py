"""compare <dataset>: the results table over every finished run of the dataset
(reports/<ds>/results.{md,csv,png}), what the lift depends on (reports/<ds>/ablations.md), discover's pairs labelled again by the best +LRD run
(data/relations/<ds>/latent_joint.parquet), and the relations readout of both (reports/<ds>/relations.{md,png})."""

import logging
import sys

from lrd.compare import report_ablations, report_dataset, settings_differ
from lrd.config.datasets import dataset_config
from lrd.config.embed import EmbedConfig
from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.data.tables import DatasetTables
from lrd.discover.joint import joint_markdown, joint_readouts
from lrd.discover.labels import relabel_best_run
from lrd.discover.report import write_relations_report
from lrd.embed.store import open_store
from lrd.io import remove_leftovers
from lrd.stage import run_stage

log = logging.getLogger("lrd.compare")


def run(params: dict, dataset: str) -> None:
    paths = dataset_config(params, dataset).paths
    train, discover = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    remove_leftovers(paths.reports, paths.latent_joint)
    tables = DatasetTables.load(paths)
    bases = {m: train.base_of(m) for m in train.specs}

    def seeds_of(model: str) -> tuple[int, ...]:  # only the seeds params.yaml lists count
        return train.ablation_seeds if model in train.ablation_models else train.seeds

    def differs(model: str, run: dict) -> list[str]:  # a result of other settings is refused, not averaged in
        return settings_differ(model, run, train, discover)

    models = report_dataset(paths, list(train.all_models), tables.stats.get("n_negatives", "stored"), bases, seeds_of, differs)
    variants = train.lrd_models + train.ablation_models
    runs = [(m.runs[s]["dev"]["NDCG@5"], name, s) for name, m in models.items() if m.info["lrd"] for s in m.seeds]
    trained = [(v, s, paths.run_relations(v, s)) for v in variants for s in seeds_of(v) if paths.run_metrics(v, s).exists()]
    text = open_store(paths, EmbedConfig.from_params(params)).matrix(tables.n_items) if runs or trained else None
    kinds = tables.model_relations(discover.model_relations)
    if variants:
        joint = joint_readouts(trained, paths.latent, tables, text, kinds) if trained and paths.latent.exists() else []
        report_ablations(paths, {m: train.changes(m) for m in variants}, bases, seeds_of, joint_markdown(joint), differs)
    used = relabel_best_run(paths, runs, tables, text, kinds, discover.latent_types,
                            discover.alpha, discover.drop_virtual, train.dim)
    if used:
        log.info("discover's pairs labelled again by %s seed %d (best dev NDCG@5 of the +LRD runs) -> %s", *used, paths.latent_joint)
    if write_relations_report(paths, tables, dataset, discover.min_probability):
        log.info("relations readout -> %s", paths.reports / "relations.md")
    print((paths.reports / "results.md").read_text())


if __name__ == "__main__":
    run_stage("compare", lambda params: run(params, sys.argv[1]))
