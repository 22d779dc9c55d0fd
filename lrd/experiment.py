"""One (dataset, model, seed) run: build, fit with resume points, rank dev and test, report.

What a `train` stage runs; the results (metrics.json, ranks.parquet, curve.csv) are written
only when the run has finished, so a failed or killed run leaves the previous ones in place.
"""

from __future__ import annotations

import dataclasses
import logging
import platform
import subprocess
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from lrd import schemas
from lrd.config.train import DiscoverConfig, ModelConfig, TrainConfig
from lrd.data.tables import DatasetTables
from lrd.errors import ConfigError, MissingUpstreamError, ModelError
from lrd.evaluate import ranking_metrics
from lrd.graph import RelationGraph, latent_names
from lrd.io import remove_leftovers, write_csv, write_json, write_parquet
from lrd.models import Catalog, Recommender, build_model, parameter_count
from lrd.paths import Paths
from lrd.sequences import Sequences
from lrd.temporal import gap_spectra
from lrd.train.batches import TrainingData
from lrd.train.checkpoint import ResumePoint, code_fingerprint, files_fingerprint, save_file
from lrd.train.device import autocast_dtype, compile_model, compiles, cpu_model, denormals_flushed, seed_torch
from lrd.train.distributed import Ranks
from lrd.train.evaluation import Scoring, candidate_ranks, full_ranks, users_per_call
from lrd.train.loop import Loop, LoopState, fit, optimizer_for
from lrd.train.stopping import Patience, ReferenceRule, StoppingRule

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Run:
    """Everything one run reads."""

    name: str
    seed: int
    cfg: ModelConfig
    train: TrainConfig
    paths: Paths
    catalog: Catalog
    data: TrainingData
    data_fingerprint: str
    device: torch.device
    amp: torch.dtype | None
    ranks: Ranks = Ranks()  # several processes (DDP): this one's place among them
    compiled: bool = False  # losses and scores through torch.compile (lrd.train.device.compile_model)

    @property
    def label(self) -> str:
        return f"{self.paths.dataset}/{self.name}/{self.seed}"

    @property
    def scoring(self) -> Scoring:
        channels = self.catalog.graph.n_relations if self.catalog.graph else 1
        users = self.train.eval_users or users_per_call(self.data.eval["dev"].candidates.shape[1], channels)
        return Scoring(users, self.amp, self.device, self.ranks)

    def model(self) -> Recommender:
        """The run's model, on its device, compiled where the run says so."""
        model = build_model(self.cfg, self.catalog).to(self.device)
        if self.compiled:
            compile_model(model)
        return model


def prepare(name: str, seed: int, tables: DatasetTables, train: TrainConfig, discover: DiscoverConfig, paths: Paths,
            text: np.ndarray | None = None, ranks: Ranks = Ranks()) -> Run:
    """`text`: the (n_items + 1) x P LLM vectors, for +LRD models; `ranks`: under DDP, this process's place."""
    cfg = train.model(name, discover)
    if cfg.lrd and text is None:
        raise ConfigError(f"model {name!r} trains LRD and needs the item vectors: list it under `train.lrd_models`")
    if cfg.lrd:
        text = ablated_vectors(text, cfg.vectors, seed)
    kinds = tables.model_relations(train.model_relations)
    graph = relation_graph(cfg, kinds, tables, paths, discover.min_probability)
    seqs = Sequences.from_table(tables.interactions, tables.n_users, tables.n_items)
    spectra = gap_spectra(seqs, graph, cfg.n_dft) if cfg.arch == "kda" and cfg.kernel_init == "dft" else None
    catalog = Catalog(tables.n_users, tables.n_items, tables.interactions.num_rows, graph, torch.from_numpy(text) if cfg.lrd else None, spectra)
    data = TrainingData(seqs, tables.candidates, train.history_max, graph)
    inputs = [paths.table(t) for t in ("interactions", "candidates", "relations", "relation_types", "items")]
    if cfg.static_latent:
        inputs.append(paths.latent)
    fingerprint = files_fingerprint(inputs) + ("" if text is None else "-" + _array_hash(text))
    device = ranks.device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # Not SASRec (padded positions take part in its attention: nothing to gain from a fixed
    # shape), nor several processes (DDP's hooks and a compiled graph are left untried).
    compiled = cfg.arch != "sasrec" and ranks.world == 1 and compiles(train.compile, device)
    return Run(name, seed, cfg, train, paths, catalog, data, fingerprint, device, autocast_dtype(train.precision, device), ranks, compiled)


def ablated_vectors(text: np.ndarray, vectors: str, seed: int) -> np.ndarray:
    """The item vectors an +LRD model reads: the LLM's as they are; `random`: Gaussian directions
    with each item's own norm (dimension and norms kept, content gone); `shuffled`: the LLM's rows
    permuted across items (the same set of vectors, no item identity). Row 0 stays padding."""
    if vectors == "llm":
        return text
    rng = np.random.default_rng([seed, 7])  # its own stream: the run's other draws stay as they are
    out = text.copy()
    if vectors == "shuffled":
        out[1:] = text[1:][rng.permutation(len(text) - 1)]
        return out
    noise = rng.standard_normal(text[1:].shape).astype(text.dtype)
    norms = np.linalg.norm(text[1:], axis=1, keepdims=True)
    out[1:] = noise / np.linalg.norm(noise, axis=1, keepdims=True).clip(min=1e-12) * norms
    return out


def _array_hash(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def relation_graph(cfg: ModelConfig, kinds: tuple[str, ...], tables: DatasetTables, paths: Paths, min_probability: float) -> RelationGraph | None:
    if cfg.arch == "sasrec":
        return None
    static = None
    if cfg.static_latent:
        if not paths.latent.exists():
            raise MissingUpstreamError(f"{paths.latent} does not exist: run `dvc repro discover@{paths.dataset}` first")
        table = pq.read_table(paths.latent, columns=["head", "tail", "relation", "probability"])
        static = table.filter(pc.greater_equal(table.column("probability"), min_probability))
        log.info("static variant: %d confident latent pairs (probability >= %.2f) as fixed relations", static.num_rows, min_probability)
    latent = latent_names(cfg.latent_types) if (cfg.lrd or cfg.static_latent) else None
    return RelationGraph.from_tables(tables.relation_types, tables.relations, tables.n_items, kinds=kinds, latent=latent, static=static)


def stopping_rule(train: TrainConfig) -> StoppingRule:
    if train.stopping == "reference":
        return ReferenceRule(min_epochs=train.min_epochs, window=train.patience)
    return Patience(patience=train.patience)


def settings(run: Run) -> dict:
    """Everything the run trains with: the model's resolved config and the training settings
    (metrics.json records them, so a result can be checked against params.yaml later)."""
    t = run.train
    return {
        "model": dataclasses.asdict(run.cfg),
        "train": {"lr": t.spec(run.name).lr, "l2": t.l2, "batch_size": t.batch_size, "eval_users": t.eval_users, "stopping": t.stopping,
                  "patience": t.patience, "min_epochs": t.min_epochs, "precision": t.precision, "compiled": run.compiled,
                  "relations": run.catalog.graph.names if run.catalog.graph else None},
    }


def fingerprint(run: Run) -> dict:
    """What a resume point must agree with: the run, its settings, its inputs, its code."""
    return {"run": [run.paths.dataset, run.name, run.seed], **settings(run), "data": run.data_fingerprint, "code": code_fingerprint()}


def train_run(run: Run) -> dict:
    """Fit (resuming from the run's last finished epoch when there is one), evaluate, write the results; return the metrics.

    Under DDP every rank runs this; rank 0 alone writes files, every rank resumes from them."""
    with denormals_flushed(run.device):
        return _fit_and_report(run)


def _fit_and_report(run: Run) -> dict:
    start = time.perf_counter()
    commit = git_commit()  # the code this run computes with: a run can outlast several commits
    main = run.ranks.main
    if main:
        remove_leftovers(run.paths.run_model(run.name, run.seed), run.paths.run_results(run.name, run.seed))
    seed_torch(run.seed, run.device)
    model = run.model()
    opt = optimizer_for(model, run.train.spec(run.name).lr, run.train.l2)
    resume = ResumePoint(run.paths.resume_state(run.name, run.seed), fingerprint(run))
    rng, stopper = np.random.default_rng(run.seed), stopping_rule(run.train)
    state = resume.restore(model, opt, stopper, rng) or LoopState(rng=rng, stopper=stopper)
    resumed_at = state.epoch
    best = run.paths.best_checkpoint(run.name, run.seed)

    def save_best(weights: dict) -> None:
        save_file(weights, best)

    data, graph = run.data, run.catalog.graph
    use_kg = graph is not None and graph.n_triples > 0
    loop = Loop(
        batches=lambda r: data.epoch(r, run.train.batch_size, use_kg, run.cfg.lrd, part=run.ranks.part),
        n_batches=-(-data.n_train // run.train.batch_size),
        evaluate=lambda: {f"dev_{k}": v for k, v in ranking_metrics(candidate_ranks(model, data, "dev", run.scoring)).items()},
        monitor="dev_NDCG@5",
        max_epochs=run.train.max_epochs,
        amp=run.amp,
        device=run.device,
        label=run.label,
        on_improve=save_best if main else None,
        on_epoch=(lambda s: resume.save(model, opt, s)) if main else None,
        losses=run.ranks.losses(model),  # after the restore: DDP starts every rank from rank 0's weights
        reduce=run.ranks.sum,
        progress=main,
    )
    try:
        state = fit(model, opt, loop, state)
    except ModelError as exc:
        raise ModelError(f"{exc} The best weights so far are in {best}.") from None
    if main:  # best.pt is the weights evaluated, whatever a damaged file or an interrupted write left there
        save_best(state.best_state)
    metrics, ranks = evaluate_run(run, model, state, commit)
    metrics.update(resumed_after_epoch=resumed_at, wall_seconds=round(time.perf_counter() - start, 1))
    if not main:
        return metrics
    write_parquet(ranks, run.paths.run_ranks(run.name, run.seed))
    write_csv(state.curve, run.paths.run_curve(run.name, run.seed))
    if run.cfg.lrd:
        save_file(relation_weights(state.best_state), run.paths.run_relations(run.name, run.seed))
    write_json(metrics, run.paths.run_metrics(run.name, run.seed))  # last: marks the run as finished
    # A finished run keeps no resume point: running it again (`dvc repro -f`) trains afresh.
    resume.path.unlink(missing_ok=True)
    return metrics


def relation_weights(weights: dict) -> dict:
    """The part of an +LRD model's weights that labels item pairs: the LRD module, and the item
    (entity) and relation embeddings its decoder scores with (under 1 MB on Office)."""
    return {k: v for k, v in weights.items() if k.startswith("lrd.") or k in ("entities.weight", "relations.weight")}


def evaluate_run(run: Run, model: Recommender, state: LoopState, commit: str) -> tuple[dict, pa.Table]:
    """The best weights' ranks on dev and test (and among all items, when asked): metrics and the ranks table."""
    t0 = time.perf_counter()
    ranks = {"dev": candidate_ranks(model, run.data, "dev", run.scoring), "test": candidate_ranks(model, run.data, "test", run.scoring)}
    if run.train.full_ranking:
        ranks["test_full"] = full_ranks(model, run.data, "test", run.scoring)
    eval_seconds = time.perf_counter() - t0
    held_out = {"dev": run.data.eval["dev"], "test": run.data.eval["test"], "test_full": run.data.eval["test"]}
    table = pa.concat_tables(
        pa.table({"model": [run.name] * len(r), "seed": np.full(len(r), run.seed, np.int32), "split": [split] * len(r),
                  "user": held_out[split].users, "target": held_out[split].candidates[:, 0].astype(np.int32), "rank": r},
                 schema=schemas.RANKS)
        for split, r in ranks.items()
    )
    graph = run.catalog.graph
    epochs = max(state.epoch, 1)
    metrics = {
        "dataset": run.paths.dataset, "model": run.name, "arch": run.cfg.arch, "lrd": run.cfg.lrd, "static_latent": run.cfg.static_latent,
        "seed": run.seed, "best_epoch": state.stopper.best_epoch, "epochs": state.epoch,
        "stopped_by": f"{run.train.stopping} rule" if state.stopped else "max_epochs",
        "test": ranking_metrics(ranks["test"]), "dev": ranking_metrics(ranks["dev"]),
        **({"test_full_ranking": ranking_metrics(ranks["test_full"])} if "test_full" in ranks else {}),
        "relation_channels": graph.n_relations if graph else 0,
        "parameters": parameter_count(model),
        "precision": str(run.amp or "fp32").removeprefix("torch."),
        "compiled": run.compiled,
        # One meaning of "seconds per epoch" everywhere: training + ranking dev (the final dev and
        # test ranking included), with the two parts beside it.
        "train_seconds": round(state.train_seconds, 1),
        "eval_seconds": round(state.eval_seconds + eval_seconds, 1),
        "seconds_per_epoch": round((state.train_seconds + state.eval_seconds + eval_seconds) / epochs, 2),
        "train_seconds_per_epoch": round(state.train_seconds / epochs, 2),
        "ranking_seconds_per_epoch": round((state.eval_seconds + eval_seconds) / epochs, 2),
        **({"processes": run.ranks.world} if run.ranks.world > 1 else {}),  # one-process metrics as they were
        **provenance(run.device, commit),
        "settings": settings(run),
    }
    return metrics, table


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return commit or "unknown"


def provenance(device: torch.device, commit: str) -> dict:
    """Which code (`commit`, taken when the run started) and machine produced a result."""
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {"git_commit": commit, "device": f"{device.type}: {name}", "cpu": cpu_model() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__}
