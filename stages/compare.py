"""compare: the results table over every trained model (reports/results.{md,csv,png}), and the
jointly trained latent relations of the best +LRD model beside discover's table."""

import logging
import shutil
from pathlib import Path

from lrd.compare import bar_chart, results_csv, results_markdown
from lrd.config import TrainConfig, dataset_config
from lrd.errors import ConfigError, MissingUpstreamError
from lrd.io import atomic_path, read_json
from lrd.stage import run_stage

log = logging.getLogger("lrd.compare")


def run(params: dict) -> None:
    dataset = dataset_config(params)
    cfg = TrainConfig.from_params(params)
    names = list((params.get("train") or {}).get("models") or [])
    for name in names:
        cfg.spec(name)  # unknown names: a clear error listing the defined ones
    summaries = {}
    for name in names:
        path = Path("metrics") / f"{name}.json"
        if not path.exists():
            raise MissingUpstreamError(f"{path} does not exist: run `dvc repro train@{name}` first")
        summaries[name] = read_json(path)
    if not summaries:
        raise ConfigError("params.yaml: `train.models` is empty")
    out = Path("reports")
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(results_markdown(summaries, dataset.name))
    with atomic_path(out / "results.csv") as tmp:
        tmp.write_text(results_csv(summaries))
    with atomic_path(out / "results.png") as tmp:
        bar_chart(summaries, tmp)

    joint = Path("data/relations") / dataset.name / "latent_joint.parquet"
    # The +LRD model with the best dev NDCG@5 speaks for the jointly trained relations.
    lrd_models = sorted((n for n in names if summaries[n].get("lrd")), key=lambda n: -summaries[n]["dev"]["NDCG@5"])
    with atomic_path(joint) as tmp:
        if lrd_models:
            shutil.copyfile(Path("models") / lrd_models[0] / "latent_joint.parquet", tmp)
            log.info("latent relations after joint training (%s, best dev NDCG@5) -> %s", lrd_models[0], joint)
        else:  # an empty table with the schema, so the output always exists
            import pyarrow.parquet as pq

            from lrd import schemas

            pq.write_table(schemas.LATENT_RELATIONS.empty_table(), tmp)
    print((out / "results.md").read_text())


if __name__ == "__main__":
    run_stage("compare", run)
