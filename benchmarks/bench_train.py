"""Training-epoch and evaluation speed of the relational models, and what the resume checkpoint costs.

Per model of --models (the params.yaml settings, as `train` runs it):

1. seconds per epoch through the real loop (lrd.train.loop.fit, with a Loop built as
   lrd.experiment.train_run builds it: training batches, dev evaluation, best weights saved on
   improvement), --epochs epochs WITH the per-epoch resume checkpoint (ResumePoint.save as
   on_epoch) and WITHOUT it, alternating, --repeats times each; the fastest of each and their
   ratio (target: the checkpoint costs < 5% of an epoch, ratio < 1.05). The save itself is
   timed too: on a busy machine that share is steadier than the ratio of two epochs.
2. seconds to rank the dev split (candidate_ranks) scoring --eval-users users per call, for
   each value, and each one's ratio to the first value's.
3. only with --ddp N (instead of 1 and 2): the run as `train` runs it (lrd.experiment.train_run)
   as one process and as N DDP ranks (gloo on CPU, NCCL on GPUs) under torchrun, each in fresh
   processes: training seconds per epoch, and train_run's wall seconds per epoch (dev evaluation,
   checkpoints and the final ranking included), from rank 0's metrics. The global batch is
   train.batch_size either way; --batches shortens the epoch to its first N batches. With N
   ranks on a machine of few cores the ranks share the cores: this checks the launch path and
   its overhead, not a speed-up.

4. only with --against COMMIT (instead of 1-3): that commit's code (a git worktree) side by side
   with the working tree's, on the same data, alternating between the two --repeats times, each
   in a fresh process at --threads (default 1) and --precision (fp32 and auto when not given):
   training seconds per epoch (--batches batches, scaled to the whole epoch, after one untimed
   epoch that pays any compilation), seconds to rank the dev split (after one untimed ranking),
   the first epoch's and first ranking's extra seconds (compilation), the epoch (training +
   dev ranking), each new/old ratio, and the dev ranking's GFLOP/s: the model's multiply-adds
   (docs/performance.md) x 2 over the seconds. The worker imports `lrd` from each tree and reads
   that tree's params.yaml; the data is this tree's.

--dataset: a processed folder (<root>/data/processed/<ds>; run ingest first) or `amazon-like`:
the Office-shaped generator (benchmarks/amazon_like.py, --users x --items) ingested into a
temporary folder. +LRD models read the dataset's embedding store when there is one, else random
unit vectors of 384 dims (the speed does not depend on their values). Every file the runs write
(best weights, resume points) goes to a temporary folder that is removed.

    python benchmarks/bench_train.py                                  # ML-100K (data/processed/ml-100k)
    python benchmarks/bench_train.py --dataset amazon-like            # Office-sized synthetic data
    python benchmarks/bench_train.py --batches 20 --epochs 1 --repeats 1 --eval-users 4,32   # quicker
    python benchmarks/bench_train.py --ddp 2 --models kda --batches 100                       # 1 process vs 2 ranks
    python benchmarks/bench_train.py --dataset data/processed/Office --against 1225e19 --batches 40   # old vs new code
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULT_TAG, report  # noqa: E402

from lrd.config.base import load_params  # noqa: E402
from lrd.config.train import DiscoverConfig, TrainConfig  # noqa: E402
from lrd.data.tables import DatasetTables  # noqa: E402
from lrd.evaluate import ranking_metrics  # noqa: E402
from lrd.experiment import Run, fingerprint, prepare, stopping_rule, train_run  # noqa: E402
from lrd.models import build_model  # noqa: E402
from lrd.paths import Paths  # noqa: E402
from lrd.train.checkpoint import ResumePoint  # noqa: E402
from lrd.train import distributed  # noqa: E402
from lrd.train.device import autocast_dtype, seed_torch  # noqa: E402
from lrd.train.evaluation import Scoring, candidate_ranks  # noqa: E402
from lrd.train.loop import Loop, LoopState, fit, optimizer_for  # noqa: E402

TARGET_RATIO = 1.05  # an epoch with its checkpoint against one without


def dataset_paths(dataset: str, params: dict, tmp: Path, users: int = 4900, items: int = 2400) -> Paths:
    """Paths of the processed tables: the folder given, or the amazon-like data ingested below `tmp`."""
    if dataset != "amazon-like":
        folder = Path(dataset).resolve()
        if folder.parent.parts[-2:] != ("data", "processed"):
            raise SystemExit(f"--dataset {dataset}: expected a folder <root>/data/processed/<name> (or amazon-like)")
        return Paths(folder.name, root=folder.parents[2])
    import amazon_like

    from lrd.config.datasets import dataset_config
    from lrd.config.ingest import IngestConfig
    from lrd.data.ingest import ingest
    from lrd.data.readers import read_dataset

    source = amazon_like.generate(tmp / "source" / "amazon-like", n_users=users, n_items=items)
    # The dataset as params.yaml would declare it, so that its ingest settings resolve as for a real one.
    ds = dataset_config({"datasets": {"amazon-like": {"format": "rechorus", "source": {"kind": "path", "path": str(source)}}}})
    cfg = IngestConfig.from_params(params, ds)
    paths = Paths(ds.name, root=tmp)
    ingest(read_dataset(ds.format, source, cfg), cfg).write(paths)
    return paths


def item_vectors(paths: Paths, params: dict, n_items: int, dim: int = 384) -> tuple[np.ndarray, str]:
    """The embedding store's (n_items + 1) x P matrix when there is one, else random unit vectors."""
    from lrd.config.embed import EmbedConfig
    from lrd.embed.store import open_store, store_dir

    cfg = EmbedConfig.from_params(params)
    if (store_dir(paths, cfg) / "manifest.json").exists():
        return open_store(paths, cfg).matrix(n_items), f"embedding store {store_dir(paths, cfg)}"
    text = np.random.default_rng(0).standard_normal((n_items + 1, dim)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    text[0] = 0.0
    return text, f"random {dim}-d"


def timed_fit(run: Run, tmp: Path, epochs: int, batches: int, checkpoint: bool) -> tuple[dict, torch.nn.Module]:
    """One fresh fit of `epochs` epochs, set up as train_run sets it up; seconds per epoch."""
    seed_torch(run.seed, run.device)
    model = build_model(run.cfg, run.catalog).to(run.device)
    opt = optimizer_for(model, run.train.spec(run.name).lr, run.train.l2)
    resume, best, saves = ResumePoint(tmp / "state.pt", fingerprint(run)), tmp / "best.pt", []

    def save_resume_point(state: LoopState) -> None:
        t = time.perf_counter()
        resume.save(model, opt, state)
        saves.append(time.perf_counter() - t)

    data, graph, size = run.data, run.catalog.graph, run.train.batch_size
    use_kg = graph is not None and graph.n_triples > 0
    full = -(-data.n_train // size)
    n = min(batches, full) if batches else full
    loop = Loop(
        batches=lambda r: itertools.islice(data.epoch(r, size, use_kg, run.cfg.lrd), n),
        n_batches=n,
        evaluate=lambda: {f"dev_{k}": v for k, v in ranking_metrics(candidate_ranks(model, data, "dev", run.scoring)).items()},
        monitor="dev_NDCG@5",
        max_epochs=epochs,
        amp=run.amp,
        device=run.device,
        label=run.label,
        on_improve=lambda weights: torch.save(weights, best),
        on_epoch=save_resume_point if checkpoint else None,
    )
    state = LoopState(rng=np.random.default_rng(run.seed), stopper=stopping_rule(run.train))
    t = time.perf_counter()
    fit(model, opt, loop, state)
    wall, done = time.perf_counter() - t, max(state.epoch, 1)
    # The training part scales from n to all batches (the epoch's up-front negative sampling with
    # it: a slight overestimate for small n); evaluation, best weights and checkpoint do not.
    train = state.train_seconds / done * full / n
    return {"epoch": train + (wall - state.train_seconds) / done, "train": train, "eval": state.eval_seconds / done,
            "checkpoint": sum(saves) / done, "checkpoint_bytes": resume.path.stat().st_size if checkpoint else 0}, model


def ddp_fit(args: argparse.Namespace, paths: Paths, name: str, processes: int, tmp: Path) -> dict:
    """Section 3: one run of `name` as `processes` ranks (1: a plain process), outputs below `tmp`."""
    root = tmp / f"ddp_{name}_{processes}"
    for data in ("processed", "embeddings"):  # the inputs, read where they are
        if (paths.root / "data" / data / paths.dataset).exists():
            (root / "data" / data).mkdir(parents=True)
            (root / "data" / data / paths.dataset).symlink_to((paths.root / "data" / data / paths.dataset).resolve())
    launcher = [sys.executable] + (["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"] if processes > 1 else [])
    worker = [str(Path(__file__).resolve()), "--ddp-worker", str(root), "--dataset", str(root / "data/processed" / paths.dataset),
              "--models", name, "--epochs", str(args.epochs), "--batches", str(args.batches), "--seed", str(args.seed)]
    worker += [f"--{k}={v}" for k, v in (("threads", args.threads), ("precision", args.precision)) if v]
    out = subprocess.run(launcher + worker, cwd=REPO, stdout=subprocess.PIPE, text=True, check=True).stdout
    return json.loads(next(line for line in out.splitlines()[::-1] if line.startswith(RESULT_TAG))[len(RESULT_TAG):])


def ddp_worker(args: argparse.Namespace, params: dict, cfg: TrainConfig, dcfg: DiscoverConfig) -> None:
    """One rank of section 3 (or the one process): train_run with the outputs below --ddp-worker."""
    source = dataset_paths(args.dataset, params, Path(args.ddp_worker))
    paths = Paths(source.dataset, root=Path(args.ddp_worker))
    cfg = dataclasses.replace(cfg, max_epochs=args.epochs, stopping="patience", patience=args.epochs + 1)
    tables = DatasetTables.load(paths)
    text = item_vectors(paths, params, tables.n_items)[0] if cfg.model(args.models, dcfg).lrd else None
    with distributed.session(cfg.distributed, cfg.ddp_timeout) as ranks:
        run = prepare(args.models, args.seed, tables, cfg, dcfg, paths, text, ranks)
        if args.batches:  # a shorter epoch: its first N batches' worth of training rows
            run.data.train_positions = run.data.train_positions[: args.batches * cfg.batch_size]
        m = train_run(run)
    if ranks.main:
        keys = ("epochs", "train_seconds_per_epoch", "wall_seconds", "device")
        print(RESULT_TAG + json.dumps({k: m[k] for k in keys} | {"processes": ranks.world, "rows_per_epoch": run.data.n_train}),
              flush=True)


def score_macs(channels: int, history: int, d: int = 64, layers: int = 5) -> int:
    """Multiply-adds of one (user, candidate) score of RCF/KDA: the relational attention over the
    history (logits and weighted sum) and `layers` rounds of self-attention across the channels
    (q/k/v, two feed-forward layers, the R x R attention's two products)."""
    return 2 * channels * history * d + layers * (channels * 5 * d * d + 2 * channels * channels * d)


def side_worker(args: argparse.Namespace) -> None:
    """Section 4, one (code version, model, precision) in this process: `lrd` is the tree's on sys.path."""
    import lrd
    from lrd.train import device

    tree = Path(lrd.__file__).resolve().parents[1]
    params = load_params(tree / "params.yaml")
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    cfg = dataclasses.replace(cfg, threads=args.threads or 1, precision=args.precision)
    torch.set_num_threads(cfg.threads)
    paths = dataset_paths(args.dataset, params, Path(args.side_worker))
    tables = DatasetTables.load(paths)
    name = args.models
    text = item_vectors(paths, params, tables.n_items)[0] if cfg.model(name, dcfg).lrd else None
    run = prepare(name, args.seed, tables, cfg, dcfg, paths, text)
    seed_torch(run.seed, run.device)
    # as train_run does, where the tree has it
    flushed = device.denormals_flushed(run.device) if hasattr(device, "denormals_flushed") else contextlib.nullcontext()
    with flushed:
        measure(args, name, run, cfg)


def measure(args: argparse.Namespace, name: str, run: Run, cfg: TrainConfig) -> None:
    """Section 4's timings of one prepared run, printed as the worker's result line."""
    from lrd.train.device import autocast

    model = run.model() if hasattr(run, "model") else build_model(run.cfg, run.catalog).to(run.device)
    opt = optimizer_for(model, cfg.spec(name).lr, cfg.l2)
    data, graph, size = run.data, run.catalog.graph, cfg.batch_size
    full = -(-data.n_train // size)
    n = min(args.batches, full) if args.batches else full

    def epoch(rng: np.random.Generator) -> float:
        """Seconds of n batches."""
        model.train()
        t = time.perf_counter()
        for batch in itertools.islice(data.epoch(rng, size, graph.n_triples > 0, run.cfg.lrd), n):
            with autocast(run.device, run.amp):
                loss = model.losses(batch.to(run.device))["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - t

    def rank() -> float:
        t = time.perf_counter()
        candidate_ranks(model, data, "dev", run.scoring)
        return time.perf_counter() - t

    rng = np.random.default_rng(args.seed)
    first_train, train = epoch(rng), epoch(rng)
    first_dev, dev = rank(), rank()
    train_epoch = train * full / n
    ev = data.eval["dev"]
    macs = score_macs(graph.n_relations, data.history_max, run.cfg.dim, run.cfg.layers) * ev.candidates.size
    print(RESULT_TAG + json.dumps({
        "train": train_epoch, "dev": dev, "compile": (first_train - train) + (first_dev - dev), "channels": graph.n_relations,
        "dev_flop": 2 * macs, "users_per_call": run.scoring.users_per_call, "amp": str(run.amp or "fp32"),
        "compiled": bool(getattr(run, "compiled", False)),
    }), flush=True)


def side_by_side(args: argparse.Namespace) -> None:
    """Section 4: --against's code and the working tree's, alternating."""
    from lrd.train.device import cpu_has_bf16, cpu_model

    with tempfile.TemporaryDirectory(prefix="bench_against_") as tmp_name:
        tmp = Path(tmp_name)
        old = tmp / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.against], cwd=REPO, check=True, capture_output=True)
        try:
            trees = {args.against: old, "working tree": REPO}
            # auto is fp32 where the CPU lacks native bf16: timed once then
            precisions = [args.precision] if args.precision else ["fp32", "auto"] if cpu_has_bf16() else ["fp32"]
            dataset = args.dataset if args.dataset == "amazon-like" else str(Path(args.dataset).resolve())
            report("cpu", f"{cpu_model()} ({'AVX-512' if 'avx512f' in Path('/proc/cpuinfo').read_text() else 'no AVX-512'}; "
                          f"native bf16: {cpu_has_bf16()})")
            report("threads", args.threads or 1)
            results: dict[tuple, list[dict]] = {}
            for _ in range(args.repeats):
                for name in args.models.split(","):
                    for precision in precisions:
                        for version, tree in trees.items():
                            worker = [sys.executable, str(Path(__file__).resolve()), "--side-worker", str(tmp / "work"),
                                      "--dataset", dataset, "--models", name, "--precision", precision, "--seed", str(args.seed),
                                      "--batches", str(args.batches), "--threads", str(args.threads or 1)]
                            env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(args.threads or 1)}
                            out = subprocess.run(worker, cwd=tree, env=env, stdout=subprocess.PIPE, text=True, check=True).stdout
                            line = next(x for x in out.splitlines()[::-1] if x.startswith(RESULT_TAG))
                            results.setdefault((name, precision, version), []).append(json.loads(line[len(RESULT_TAG):]))
            for name in args.models.split(","):
                for precision in precisions:
                    best = {v: {k: min(r[k] for r in results[(name, precision, v)]) for k in ("train", "dev", "compile")}
                            | {k: results[(name, precision, v)][0][k] for k in ("channels", "users_per_call", "amp", "compiled")}
                            for v in trees}
                    for v, b in best.items():
                        tag = f"{name}_{precision}_{'old' if v == args.against else 'new'}"
                        b["epoch"] = b["train"] + b["dev"]
                        report(f"{tag}_setting", f"{b['amp']}, compiled {b['compiled']}, {b['users_per_call']} users/call, R = {b['channels']}")
                        for k in ("train", "dev", "epoch", "compile"):
                            report(f"{tag}_{k}_seconds", b[k])
                        report(f"{tag}_dev_gflops", results[(name, precision, v)][0]["dev_flop"] / b["dev"] / 1e9)
                    o, nw = best[args.against], best["working tree"]
                    for k in ("train", "dev", "epoch"):
                        report(f"{name}_{precision}_{k}_speedup", o[k] / nw[k])
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, check=False, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/processed/ml-100k", help="a processed folder, or amazon-like")
    ap.add_argument("--users", type=int, default=4900, help="amazon-like only: users to generate")
    ap.add_argument("--items", type=int, default=2400, help="amazon-like only: items to generate")
    ap.add_argument("--models", default="kda,kda_lrd")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per fit")
    ap.add_argument("--repeats", type=int, default=2, help="fits per variant (with / without checkpoint), alternating")
    ap.add_argument("--batches", type=int, default=0, help="time only N batches per epoch and scale up (0: whole epochs)")
    ap.add_argument("--eval-users", default="4,32,256", help="users scored per call when ranking dev")
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--threads", type=int, default=None, help="default: train.threads, else torch's choice")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default=None, help="default: train.precision")
    ap.add_argument("--ddp", type=int, default=0, help="section 3 only: 1 process vs N DDP ranks")
    ap.add_argument("--ddp-worker", help=argparse.SUPPRESS)  # one rank of section 3, writing below this folder
    ap.add_argument("--against", help="section 4 only: a git commit to time side by side with the working tree")
    ap.add_argument("--side-worker", help=argparse.SUPPRESS)  # one version of section 4, temporary files below this folder
    args = ap.parse_args()
    if args.side_worker:
        return side_worker(args)
    if args.against:
        return side_by_side(args)

    params = load_params()
    cfg, dcfg = TrainConfig.from_params(params), DiscoverConfig.from_params(params)
    cfg = dataclasses.replace(cfg, threads=args.threads or cfg.threads, precision=args.precision or cfg.precision)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    eval_users = [int(u) for u in args.eval_users.split(",")]
    if args.ddp_worker:
        return ddp_worker(args, params, cfg, dcfg)

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp_name:
        tmp = Path(tmp_name)
        paths = dataset_paths(args.dataset, params, tmp, args.users, args.items)
        tables = DatasetTables.load(paths)
        names = args.models.split(",")
        text, text_source = (item_vectors(paths, params, tables.n_items) if any(cfg.model(n, dcfg).lrd for n in names)
                             else (None, "none"))
        report("dataset", f"{paths.dataset} ({paths.processed})")
        report("threads", torch.get_num_threads())
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as prepare() picks it
        report("precision", f"{cfg.precision} -> {autocast_dtype(cfg.precision, device) or 'fp32'} on {device.type}")
        report("users_items_interactions", f"{tables.n_users} {tables.n_items} {tables.interactions.num_rows}")
        report("item_vectors", text_source)
        if args.ddp:
            report("cpu_cores", os.cpu_count())
            for name in names:
                for n in (1, args.ddp):
                    m = ddp_fit(args, paths, name, n, tmp)
                    if n == 1:
                        report(f"{name}_rows_per_epoch", m["rows_per_epoch"])
                        report(f"{name}_device", m["device"])
                    report(f"{name}_{n}_processes_train_seconds_per_epoch", m["train_seconds_per_epoch"])
                    report(f"{name}_{n}_processes_wall_seconds_per_epoch", m["wall_seconds"] / m["epochs"])
            return
        for name in names:
            run = prepare(name, args.seed, tables, cfg, dcfg, paths, text)
            full = -(-run.data.n_train // cfg.batch_size)
            report(f"{name}_relation_channels_R", run.catalog.graph.n_relations if run.catalog.graph else 0)
            report(f"{name}_rows_per_epoch", run.data.n_train)
            report(f"{name}_batches_per_epoch", full)
            report(f"{name}_batches_timed_per_epoch", min(args.batches, full) if args.batches else full)

            # 1. Epochs with and without the resume checkpoint, alternating so that drifts in
            # the machine's speed hit both alike; every fit starts from the same seed.
            times = {True: [], False: []}
            for _ in range(args.repeats):
                for checkpoint in (True, False):
                    t, model = timed_fit(run, tmp, args.epochs, args.batches, checkpoint)
                    times[checkpoint].append(t)
            with_, without = (min(times[c], key=lambda t: t["epoch"]) for c in (True, False))
            report(f"{name}_epoch_seconds_with_checkpoint", with_["epoch"])
            report(f"{name}_epoch_seconds_without_checkpoint", without["epoch"])
            report(f"{name}_epoch_seconds_all_with", " ".join(f"{t['epoch']:.3f}" for t in times[True]))
            report(f"{name}_epoch_seconds_all_without", " ".join(f"{t['epoch']:.3f}" for t in times[False]))
            report(f"{name}_ratio_with_vs_without", with_["epoch"] / without["epoch"])
            report(f"{name}_train_seconds_per_epoch", without["train"])
            report(f"{name}_dev_eval_seconds_per_epoch", without["eval"])
            report(f"{name}_checkpoint_save_seconds", with_["checkpoint"])
            report(f"{name}_checkpoint_share_of_epoch", with_["checkpoint"] / without["epoch"])
            report(f"{name}_checkpoint_bytes", with_["checkpoint_bytes"])
            report(f"{name}_meets_target", with_["epoch"] / without["epoch"] < TARGET_RATIO)

            # 2. Ranking dev, with the last fit's weights, at each number of users per call.
            report(f"{name}_dev_users", len(run.data.eval["dev"].users))
            seconds = []
            for u in eval_users:
                t = time.perf_counter()
                candidate_ranks(model, run.data, "dev", Scoring(u, run.amp, run.device))
                seconds.append(time.perf_counter() - t)
                report(f"{name}_eval_dev_seconds_users_{u}", seconds[-1])
            for u, s in zip(eval_users[1:], seconds[1:]):
                report(f"{name}_eval_dev_ratio_users_{u}_vs_{eval_users[0]}", s / seconds[0])


if __name__ == "__main__":
    main()
