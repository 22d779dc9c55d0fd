"""The statistics of the results table do not overclaim (issue: the answer)."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from lrd import schemas
from lrd.compare import ModelRuns, _p, compact_metrics, lift, user_test
from lrd.paths import Paths


def _write_ranks(paths: Paths, model: str, seed: int, ranks: np.ndarray) -> None:
    n = len(ranks)
    table = pa.table({"model": [model] * n, "seed": np.full(n, seed, np.int32), "split": ["test"] * n,
                      "user": np.arange(1, n + 1, dtype=np.int32), "target": np.ones(n, np.int32), "rank": ranks.astype(np.int32)},
                     schema=schemas.RANKS)
    path = paths.run_ranks(model, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def test_user_test_averages_each_user_over_the_seeds(tmp_path):
    """The variant's seed 1 ranks are the base's seed 2 ranks and the other way round: per user,
    averaged over the seeds, nothing differs (p = 1), while each seed on its own differs for most
    users; pooling the 800 (user, seed) pairs as independent samples would find a difference."""
    paths = Paths("x", root=tmp_path)
    rng = np.random.default_rng(0)
    first, second = rng.integers(1, 8, 400), rng.integers(1, 8, 400)
    _write_ranks(paths, "b", 1, first)
    _write_ranks(paths, "b", 2, second)
    _write_ranks(paths, "v", 1, second)
    _write_ranks(paths, "v", 2, first)
    assert user_test(paths, "v", "b", [1, 2]) == 1.0
    _write_ranks(paths, "v", 2, np.minimum(first, 2))  # better on seed 2 for most users: a difference it does see
    assert user_test(paths, "v", "b", [1, 2]) < 0.001


def test_no_significance_mark_below_three_seeds():
    assert _p(0.001, 2) == "0.001" and _p(1e-9, 2) == "1.0e-09"
    assert _p(0.001, 3) == "0.001 *" and _p(0.2, 5) == "0.200"


def test_dvc_metrics_carry_the_lift_interval():
    metrics = lambda v: {"test": {"NDCG@5": v, "HR@5": v}}  # noqa: E731
    base = ModelRuns("kda", {1: metrics(0.30), 2: metrics(0.32), 3: metrics(0.31)})
    variant = ModelRuns("kda_lrd", {1: metrics(0.31), 2: metrics(0.31), 3: metrics(0.33)})
    x = lift(variant, base, "NDCG@5")
    shown = compact_metrics({"kda": base, "kda_lrd": variant}, {"kda_lrd": ("kda", [x])})["kda_lrd"]
    assert shown["n"] == 3 and shown["lift_NDCG@5_ci_low"] < shown["lift_NDCG@5"] < shown["lift_NDCG@5_ci_high"]
    assert 0 < shown["lift_NDCG@5_p"] <= 1
