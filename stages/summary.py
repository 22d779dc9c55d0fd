"""summary: the paper-style table of datasets x models over every finished run (reports/results.md)."""

from lrd.compare import load_runs, paper_table
from lrd.config.datasets import dataset_config, dataset_names
from lrd.config.train import TrainConfig
from lrd.io import atomic_path
from lrd.stage import run_stage


def run(params: dict) -> None:
    train = TrainConfig.from_params(params)
    models = list(train.all_models)
    results = {ds: load_runs(dataset_config(params, ds).paths, models, lambda _: train.seeds) for ds in dataset_names(params)}
    out = dataset_config(params).paths.summary_report
    with atomic_path(out) as tmp:
        tmp.write_text(paper_table(results, models))
    print(out.read_text())


if __name__ == "__main__":
    run_stage("summary", run)
