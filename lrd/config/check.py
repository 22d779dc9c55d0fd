"""params.yaml checked as a whole: every section built into its typed config, every model of the
matrix resolved, no unknown top-level key. The `params` stage runs it before every other stage
(they depend on its constant output), so a typo anywhere fails `dvc repro` at once, also when
every stage is up to date; `lrd params check` runs it by hand."""

from __future__ import annotations

from pathlib import Path

from lrd.config.base import SHARED_KEYS, load_params, shared_config
from lrd.config.datasets import dataset_config, dataset_names
from lrd.config.embed import EmbedConfig
from lrd.config.ingest import IngestConfig
from lrd.config.train import DiscoverConfig, TrainConfig
from lrd.errors import ConfigError

SECTIONS = ("datasets", "ingest", "embed", "discover", "models", "train")
CHECKED = Path("data/params-checked")  # the stage's output: its content never changes
CONTENT = "params.yaml checked: every section builds into its typed config\n"


def check_params(params: dict) -> TrainConfig:
    """Raise ConfigError naming the first problem; return the training config (the matrix)."""
    if not isinstance(params, dict):
        raise ConfigError(f"params.yaml must be a mapping of settings, got {params!r}")
    known = set(SHARED_KEYS) | set(SECTIONS)
    unknown = sorted(str(k) for k in params if k not in known)
    if unknown:
        raise ConfigError(f"params.yaml: unknown top-level key(s) {', '.join(f'`{k}`' for k in unknown)}; "
                          f"valid keys: {', '.join(sorted(known))}")
    shared_config(params)
    for name in dataset_names(params):
        IngestConfig.from_params(params, dataset_config(params, name))
    EmbedConfig.from_params(params)
    discover = DiscoverConfig.from_params(params)
    train = TrainConfig.from_params(params)
    for name in train.all_models + train.ablation_models:
        _check_stage_name(name)
        train.model(name, discover)
    return train


def _check_stage_name(model: str) -> None:
    """A training stage is `<stage>@<dataset>-<model>-<seed>`: with integer seeds and no '-' in a
    model name it reads back uniquely from the right, whatever '-' the dataset name holds
    (`ml-100k`). A '-' in a model name lets two cells share one stage name: dataset `tiny` x
    model `x-kda` and dataset `tiny-x` x model `kda` are both train@tiny-x-kda-2019."""
    if "-" in model or "@" in model:
        raise ConfigError(f"params.yaml: model name {model!r} contains {'-' if '-' in model else '@'!r}, which joins a stage name's parts "
                          f"(train@<dataset>-<model>-<seed>), so two cells could get one name; rename it, e.g. "
                          f"{model.replace('-', '_').replace('@', '_')!r}, in `models` and in the `train` lists")


