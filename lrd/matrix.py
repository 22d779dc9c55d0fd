"""The experiment matrix: every (dataset, model, seed) training stage of dvc.yaml, its state, and
a runner that packs the pending ones onto the cores (or GPUs) and records each finished one in
dvc.lock.

The runner does not go through `dvc repro` for the cells: DVC holds one repository lock per
run, so two `dvc repro` processes cannot train at once. It runs each cell's own stage command
(the `cmd` of dvc.yaml) in a pool, then `dvc commit`s each finished cell, one at a time, which
records exactly what `dvc repro` would have (`dvc status` then has nothing to do for it). The
upstream stages a cell reads (ingest, embed, discover) are brought up to date with `dvc repro`
first. Every cell resumes from its last finished epoch, so a runner that is stopped (Ctrl-C,
SIGTERM, a session's end) loses at most the epochs in flight.

State lives where the stages put it (results/, models/) and in logs/matrix/ (each cell's log,
the pid of a running cell, the exit status of a failed one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import yaml

from lrd.config.base import load_params
from lrd.config.datasets import dataset_names
from lrd.config.train import TrainConfig
from lrd.errors import ConfigError, DataError, LRDError
from lrd.io import read_json
from lrd.paths import Paths
from lrd.runlock import claim, claim_holder, hand_over, read_claim, runner_lock  # noqa: F401 (runner_lock: the CLI takes it from here)

log = logging.getLogger(__name__)

# Each training stage of dvc.yaml: its model list and seed list in params.yaml `train`, what it
# reads upstream (the stage `dvc repro` must have brought up to date before it runs), and the
# stage command it runs.
STAGES = {
    "train": ("models", "seeds", "ingest", "train"),
    "train_lrd": ("lrd_models", "seeds", "embed", "train_lrd"),
    "train_static": ("static_models", "seeds", "discover", "train"),
    "train_ablation": ("ablation_models", "ablation_seeds", "embed", "train_lrd"),
}


@dataclasses.dataclass(frozen=True)
class Cell:
    stage: str  # train | train_lrd | train_static
    dataset: str
    model: str
    seed: int

    @property
    def name(self) -> str:
        """The stage name DVC gives this cell of the matrix."""
        return f"{self.stage}@{self.dataset}-{self.model}-{self.seed}"

    @property
    def command(self) -> list[str]:
        """dvc.yaml's `cmd` for the cell."""
        return ["stages/run", STAGES[self.stage][3], self.dataset, self.model, str(self.seed)]

    @property
    def argv_tail(self) -> tuple[str, str, str]:
        """How the cell's stage command ends: how a pid file of an older runner (the pid alone) is
        told from an unrelated process that got the same pid."""
        return (self.dataset, self.model, str(self.seed))

    def paths(self, root: Path) -> Paths:
        return Paths(self.dataset, root)


def cells(params: dict) -> list[Cell]:
    """Every cell of dvc.yaml's training matrices, by dataset, then seed, then model (in the order
    of params.yaml `models`), so that a base model and its +LRD twin of one seed finish together."""
    train = TrainConfig.from_params(params)
    order = {name: i for i, name in enumerate(train.specs)}
    listed = [(stage, m, seed) for stage, (models, seeds, *_) in STAGES.items() for m in getattr(train, models) for seed in getattr(train, seeds)]
    listed.sort(key=lambda x: (x[2], order.get(x[1], len(order))))
    return [Cell(stage, ds, m, seed) for ds in dataset_names(params) for stage, m, seed in listed]


def select(all_cells: list[Cell], datasets: Iterable[str] = (), models: Iterable[str] = (), seeds: Iterable[int] = ()) -> list[Cell]:
    """The cells of the given datasets / models / seeds (each empty: all), in matrix order."""
    datasets, models, seeds = set(datasets), set(models), set(seeds)
    for what, asked, known in (("dataset", datasets, {c.dataset for c in all_cells}), ("model", models, {c.model for c in all_cells}),
                               ("seed", seeds, {c.seed for c in all_cells})):
        unknown = sorted(map(str, asked - known))
        if unknown:
            raise ConfigError(f"no cell of the matrix has {what} {', '.join(unknown)}; the matrix has: {', '.join(sorted(map(str, known)))}")
    return [c for c in all_cells if (not datasets or c.dataset in datasets) and (not models or c.model in models)
            and (not seeds or c.seed in seeds)]


# --------------------------------------------------------------------------------------------
# state of a cell


@dataclasses.dataclass
class CellState:
    cell: Cell
    state: str  # done | stale | running | failed | started | pending
    epochs: int = 0
    best_dev: float | None = None  # best dev NDCG@5 so far (or of the finished run)
    seconds_per_epoch: float | None = None  # training + dev evaluation, measured
    best_epoch: int | None = None  # the epoch that first reached best_dev
    note: str = ""
    metrics: dict | None = None
    params_changed: list[str] = dataclasses.field(default_factory=list)  # results of the old params (see old_results)


def logs_dir(root: Path) -> Path:
    return root / "logs" / "matrix"


def running_in(root: Path, cell: Cell) -> int | None:
    """The pid of the live process that runs `cell` (its pid file names it), else None."""
    holder = claim_holder(logs_dir(root) / f"{cell.name}.pid", cell.argv_tail)
    return holder.pid if holder is not None else None


def _read_json(path: Path) -> dict | None:
    """A run's metrics.json, or None when it is missing or damaged (the cell then counts as not finished)."""
    try:
        return read_json(path)
    except (OSError, DataError):
        return None


def _progress(state_file: Path) -> tuple[int, float | None, float | None, int | None]:
    """Epochs done, best dev NDCG@5, seconds per epoch and the epoch that first reached the best,
    from a resume point (0, None, None, None when unreadable)."""
    import torch  # only here: `lrd matrix status` without running cells needs no torch

    try:
        saved = torch.load(state_file, map_location="cpu", weights_only=True)
        curve = json.loads(saved["curve"])
        seconds = sum(saved.get("seconds", [0.0, 0.0]))
    except Exception:  # a resume point being replaced, or damaged: the run itself will say
        return 0, None, None, None
    dev = [row.get("dev_NDCG@5") for row in curve if row.get("dev_NDCG@5") is not None]
    return len(curve), (max(dev) if dev else None), (seconds / len(curve) if curve else None), (dev.index(max(dev)) + 1 if dev else None)


def read_lock(root: Path) -> dict:
    """dvc.lock's `stages` ({} when there is no dvc.lock yet); LRDError when it is not a lock file."""
    path = root / "dvc.lock"
    try:
        lock = yaml.safe_load(path.read_text()) if path.exists() else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise LRDError(f"{path} cannot be read ({_first_line(str(exc))}); restore it (`git checkout dvc.lock`)") from None
    lock = lock or {}
    stages = lock.get("stages", {}) if isinstance(lock, dict) else None
    if not isinstance(stages, dict) or not all(isinstance(v, dict) for v in stages.values()):
        raise LRDError(f"{path} is not a DVC lock file (a mapping with `stages:`, one mapping per stage; found "
                       f"{type(lock).__name__ if not isinstance(lock, dict) else 'stages: ' + type(stages).__name__}); "
                       "restore it (`git checkout dvc.lock`)")
    return stages


def has_remote(root: Path) -> bool:
    """Whether a DVC remote is configured (.dvc/config or config.local): only then is `dvc pull` advice."""
    return any('["remote' in f.read_text(errors="replace").replace("'", '"') for f in (root / ".dvc/config", root / ".dvc/config.local")
               if f.is_file())


def lock_stages(root: Path) -> set[str]:
    """The stages dvc.lock records."""
    return set(read_lock(root))


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


def dvc_changed(root: Path, names: list[str]) -> dict[str, bool]:
    """The stages among `names` that `dvc status` would run again, each with whether only outputs
    are missing here (a clone without the DVC cache: `dvc pull` brings them). LRDError when DVC
    cannot answer: an empty or unreadable answer must never read as "nothing changed"."""
    if not names:
        return {}
    proc = subprocess.run([sys.executable, "-m", "dvc", "status", "--json", *names], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    try:
        report = json.loads(proc.stdout) if proc.returncode == 0 else None
    except ValueError:
        report = None
    if not isinstance(report, dict):
        said = _first_line(proc.stderr) or _first_line(proc.stdout) or "no answer"
        raise LRDError(f"`dvc status` failed (exit {proc.returncode}: {said}), so which cells are done is unknown; "
                       "fix what it says (params.yaml, dvc.yaml or dvc.lock) and run again, or pass --no-dvc")
    out = {}
    for name, changes in report.items():
        kinds = {k: v for change in changes if isinstance(change, dict) for k, v in change.items()}
        # Missing here, not changed: the files a clone without the DVC cache lacks.
        missing = set(kinds) <= {"changed outs", "changed deps"} and all(
            isinstance(v, str) and v in ("not in cache", "deleted") for group in kinds.values() for v in group.values())
        out[name] = missing
    return out


def _md5(path: Path) -> str | None:
    """The file's md5 as dvc.lock records it (`hash: md5`: of the bytes), None when it is missing."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "md5").hexdigest()
    except OSError:
        return None


def _same_value(a, b) -> bool:
    """Whether two params values are equal as DVC means it: dvc.lock writes some floats as strings
    ("1e-06" for 1.0e-6), so numbers compare as numbers."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(_same_value, a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or a == b
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return a == b


_ABSENT = object()


def _lookup(params: dict, key: str):
    """params.yaml's value of a DVC params key (`models.kda`, `train.l2`, `dim`), _ABSENT when missing."""
    value = params
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return _ABSENT
        value = value[part]
    return value


def old_results(root: Path, cell: Cell, lock: dict, params: dict | None = None) -> list[str]:
    """The params that differ between params.yaml and what dvc.lock recorded for the cell, each as
    `key: recorded -> now`, when the cell's results still hash to what dvc.lock recorded: the results
    are then the earlier run's, made with the recorded params, and recording them under the new
    params would be wrong. [] when the params agree, or when the results changed (a new run)."""
    entry = lock.get(cell.name)
    if not isinstance(entry, dict):
        return []
    outs = {o.get("path"): o.get("md5") for o in entry.get("outs") or [] if isinstance(o, dict)}
    results = [path for path in outs if isinstance(path, str) and path.startswith("results/")]
    if not results or any(_md5(root / path) != outs[path] for path in results):
        return []
    if params is None:
        params = load_params(root / "params.yaml")
    recorded = (entry.get("params") or {}).get("params.yaml") or {}
    differ = []
    for key, then in sorted(recorded.items()):
        now = _lookup(params, key)
        if now is _ABSENT or not _same_value(then, now):
            differ.append(f"{key}: {_short(then)} -> {'(absent)' if now is _ABSENT else _short(now)}")
    return differ


def _short(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def states(root: Path, selected: list[Cell], use_dvc: bool = True) -> list[CellState]:
    """The state of each cell. done: results written and dvc.lock up to date for them (on a clone,
    perhaps with the weights still to `dvc pull`); stale:
    results written but dvc.lock does not record them (or their code, data or params changed
    since); running: a runner's process is training it; failed: its last run exited with an
    error; started: a resume point, nothing running; pending: nothing yet."""
    lock = read_lock(root)
    recorded = set(lock)
    changed = dvc_changed(root, [c.name for c in selected if c.name in recorded]) if use_dvc else {}
    out = []
    for cell in selected:
        paths, logs = cell.paths(root), logs_dir(root)
        metrics = _read_json(paths.run_metrics(cell.model, cell.seed))
        st = CellState(cell, "pending", metrics=metrics)
        resumable = paths.resume_state(cell.model, cell.seed).exists()
        if running_in(root, cell) is not None:
            st.state = "running"
        elif (logs / f"{cell.name}.failed").exists():
            st.state, st.note = "failed", _first_line((logs / f"{cell.name}.failed").read_text(errors="replace"))[:120]
        elif metrics is not None:
            if cell.name not in recorded:
                st.state, st.note = "stale", "not in dvc.lock"
            elif changed.get(cell.name):
                st.state, st.note = "done", "its inputs or weights are not in this workspace: " + (
                    "`dvc pull` brings them from the remote" if has_remote(root) else
                    "no DVC remote is configured to pull them from (README: A fresh clone, and a DVC remote)")
            elif cell.name in changed:
                st.params_changed = old_results(root, cell, lock)
                st.state, st.note = "stale", ("params changed since its results: " + "; ".join(st.params_changed) + "; `lrd matrix run "
                                              "--rerun-stale` re-runs it" if st.params_changed
                                              else "dvc.lock differs (code, data or params changed since)")
            else:
                st.state = "done"
            if st.state == "stale" and resumable:
                # A finished run keeps no resume point: this one is a re-run that was stopped. It
                # resumes; the results there are still the earlier run's and are not recorded.
                st.state, st.note = "started", "a re-run, stopped: resumes (the results there are the earlier run's)"
        elif resumable:
            st.state = "started"
        if st.state in ("done", "stale") and metrics is not None:
            st.epochs, st.best_dev = int(metrics.get("epochs", 0)), (metrics.get("dev") or {}).get("NDCG@5")
            epochs = max(st.epochs, 1)
            st.seconds_per_epoch = (float(metrics.get("train_seconds", 0)) + float(metrics.get("eval_seconds", 0))) / epochs
        elif paths.resume_state(cell.model, cell.seed).exists():
            st.epochs, st.best_dev, st.seconds_per_epoch, st.best_epoch = _progress(paths.resume_state(cell.model, cell.seed))
        out.append(st)
    return out


@dataclasses.dataclass(frozen=True)
class StopBounds:
    """The earliest epoch at which the stopping rule of `train` (params.yaml) can end a run that
    has started: the reference rule not before epoch min_epochs + 1 nor before `patience` (its
    window) values from the best so far on; patience `patience` epochs after the best. (The
    latest is not bounded: every new best moves it.)"""

    stopping: str = "reference"
    min_epochs: int = 20
    patience: int = 5
    max_epochs: int = 200

    @classmethod
    def from_params(cls, params: dict) -> "StopBounds":
        t = TrainConfig.from_params(params)  # the typed config's values and defaults, checked
        return cls(t.stopping, t.min_epochs, t.patience, t.max_epochs)

    def clamp(self, length: float, epochs: int, best_epoch: int | None) -> float:
        """A run's expected length in epochs, no shorter than the rule allows after `epochs` epochs."""
        lo = epochs + 1
        if best_epoch is not None:
            lo = max(lo, self.min_epochs + 1, best_epoch + self.patience - 1) if self.stopping == "reference" else max(lo, best_epoch + self.patience)
        return min(max(length, lo), self.max_epochs)


START_SECONDS = 120.0  # a cell's start before its first epoch: loading the data, compiling the model


def fits_before(deadline: float | None, epoch: float | None) -> bool:
    """Whether a cell started now ends its first epoch (a resume point) before `deadline`; True
    without a deadline or a measured rate (nothing to go by: start it)."""
    return deadline is None or epoch is None or time.time() + START_SECONDS + epoch <= deadline


def epoch_rates(all_states: list[CellState], pool: list[CellState] = ()) -> dict[Cell, float]:
    """Seconds per epoch of each cell, as `estimate` rates it: its own, else its model's on the
    dataset, else the dataset's; cells with none are left out."""
    every = list(all_states) + [p for p in pool if p.cell not in {s.cell for s in all_states}]
    rated = [s for s in every if s.seconds_per_epoch]
    out = {}
    for s in all_states:
        for same in (lambda f: f.cell == s.cell, lambda f: f.cell.dataset == s.cell.dataset and f.cell.model == s.cell.model,
                     lambda f: f.cell.dataset == s.cell.dataset):
            rates = [f.seconds_per_epoch for f in rated if same(f)]
            if rates:
                out[s.cell] = sum(rates) / len(rates)
                break
    return out


def estimate(all_states: list[CellState], default_epochs: int, bounds: StopBounds = StopBounds(),
             pool: list[CellState] = ()) -> dict[Cell, tuple[float | None, bool]]:
    """Seconds left per unfinished cell, and whether both its rate and its length were measured.

    The rate is `epoch_rates`' (the cell's own, else its model's, else its dataset's); the length is the mean epoch count of
    finished cells of the same dataset and model, else `default_epochs` (marked as a guess), no
    shorter than the stopping rule allows given the cell's best epoch so far. `pool`: more cells
    (those a filter left out) whose rates and lengths count too."""
    every = list(all_states) + [p for p in pool if p.cell not in {s.cell for s in all_states}]
    finished = [s for s in every if s.state in ("done", "stale") and s.seconds_per_epoch]

    def mean(values):
        values = [v for v in values if v]
        return sum(values) / len(values) if values else None

    out, rates = {}, epoch_rates(all_states, pool)
    for s in all_states:
        if s.state in ("done", "stale"):
            continue
        same = [f for f in finished if f.cell.dataset == s.cell.dataset and f.cell.model == s.cell.model]
        rate = rates.get(s.cell)
        length = mean(f.epochs for f in same)
        measured = bool(length and rate)
        length = bounds.clamp(length or default_epochs, s.epochs, s.best_epoch)
        out[s.cell] = (rate * (length - s.epochs) if rate else None, measured)
    return out


def rerun_estimate(all_states: list[CellState], pool: list[CellState] = ()) -> dict[Cell, tuple[float | None, bool]]:
    """Seconds to run each stale cell again: its last run's epochs, at the rate of its model's
    done cells (the current code, which made it stale, often runs at another speed), else at its
    own last rate."""
    every = list(all_states) + [p for p in pool if p.cell not in {s.cell for s in all_states}]
    out = {}
    for s in all_states:
        if s.state != "stale":
            continue
        current = [f.seconds_per_epoch for f in every if f.state == "done" and f.seconds_per_epoch
                   and (f.cell.dataset, f.cell.model) == (s.cell.dataset, s.cell.model)]
        rate = sum(current) / len(current) if current else s.seconds_per_epoch
        out[s.cell] = (rate * s.epochs if rate else None, True)
    return out


def plan_estimate(all_states: list[CellState], todo: list[Cell], default_epochs: int, bounds: StopBounds = StopBounds(),
                  pool: list[CellState] = ()) -> dict[Cell, tuple[float | None, bool]]:
    """`estimate` for the cells of `todo` alone, stale ones at `rerun_estimate`."""
    eta = estimate(all_states, default_epochs, bounds, pool) | rerun_estimate(all_states, pool)
    return {c: eta[c] for c in todo if c in eta}


def schedule(todo: list[Cell], all_states: list[CellState], default_epochs: int = 40, bounds: StopBounds = StopBounds()) -> list[Cell]:
    """The order to start cells in: dataset by dataset and seed by seed, as the matrix lists them,
    so that a model and its +LRD twin finish close together (a paired result early); within a
    seed, the longest first (the others then fill the slots it leaves)."""
    eta = estimate(all_states, default_epochs, bounds)
    datasets = list(dict.fromkeys(s.cell.dataset for s in all_states))
    return sorted(todo, key=lambda c: (datasets.index(c.dataset), c.seed, -(eta.get(c, (0, False))[0] or 0)))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = int(round(seconds / 60))
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def status_table(all_states: list[CellState], jobs: int, default_epochs: int, bounds: StopBounds = StopBounds(),
                 pool: list[CellState] = ()) -> str:
    """One line per cell, then the totals and the ETA at `jobs` cells at a time."""
    eta = estimate(all_states, default_epochs, bounds, pool)
    width = max([34] + [len(s.cell.name) for s in all_states])
    lines = [f"{'cell':<{width}} {'state':<8} {'epochs':>6} {'best dev NDCG@5':>15} {'s/epoch':>8} {'left':>8}  note"]
    for s in all_states:
        left, measured = eta.get(s.cell, (None, True))
        best = f"{s.best_dev:.4f}" if s.best_dev is not None else "-"
        rate = f"{s.seconds_per_epoch:.1f}" if s.seconds_per_epoch else "-"
        left_text = "-" if s.cell not in eta else _duration(left) + ("" if measured else "~")
        lines.append(f"{s.cell.name:<{width}} {s.state:<8} {s.epochs:>6} {best:>15} {rate:>8} {left_text:>8}  {s.note}")
    counts = {k: sum(s.state == k for s in all_states) for k in ("done", "stale", "running", "started", "failed", "pending")}
    lines.append("")
    lines.append(", ".join(f"{n} {k}" for k, n in counts.items() if n) + f" of {len(all_states)} cells")
    if eta:
        lines.append("left: " + cost(eta, jobs).text(jobs, default_epochs))
    rerun = rerun_estimate(all_states, pool)
    if rerun:
        c = cost(rerun, jobs)
        lines.append(f"stale, to run again (`lrd matrix run --rerun-stale`): {c.cpu_seconds / 3600:.1f} CPU-hours at their last "
                     f"run's epochs and their model's current rate" + (f" (+ {c.unknown} of no known rate)" if c.unknown else ""))
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Cost:
    """What running some cells costs, from `estimate`'s seconds per cell."""

    cpu_seconds: float  # the cells with a measured rate, one after the other
    wall_seconds: float  # at `jobs` cells at a time
    unknown: int  # cells with no measured rate yet (not in the sums)
    guessed: bool  # some length is `default_epochs`, not measured

    def text(self, jobs: int, default_epochs: int) -> str:
        return (f"{self.cpu_seconds / 3600:.1f} CPU-hours measured at the cells' own rates"
                + (f" (+ {self.unknown} cells with no measured rate yet)" if self.unknown else "")
                + f"; about {_duration(self.wall_seconds)} at {jobs} cells at a time"
                + (f" (~: no finished cell of that model yet, {default_epochs} epochs assumed)" if self.guessed else ""))


def cost(eta: dict[Cell, tuple[float | None, bool]], jobs: int, cells: Iterable[Cell] | None = None) -> Cost:
    """The cost of `cells` (default: every cell `eta` has) at `jobs` cells at a time."""
    picked = [eta[c] for c in cells if c in eta] if cells is not None else list(eta.values())
    known = [v for v, _ in picked if v is not None]
    # no faster than the longest cell: one cell does not split over several slots
    wall = max(sum(known) / max(jobs, 1), max(known, default=0))
    return Cost(sum(known), wall, len(picked) - len(known), any(not m for _, m in picked))


# --------------------------------------------------------------------------------------------
# running cells


def default_jobs(threads: int, per_gpu: int | None = None) -> tuple[int, list[str | None]]:
    """Cells at a time and the device of each slot: on GPUs, all of them, `per_gpu` cells on each
    (default $LRD_CELLS_PER_GPU, else the cores / threads shared out, since every cell keeps a
    core busy feeding its GPU; scripts/gpu_cells.py measures what memory allows); on a CPU,
    cores / threads."""
    try:
        import torch

        gpus = torch.cuda.device_count()
    except ImportError:
        gpus = 0
    cores = os.cpu_count() or 1
    if gpus:
        per_gpu = per_gpu or int(os.environ.get("LRD_CELLS_PER_GPU", "0")) or max(1, cores // max(threads, 1) // gpus)
        slots = [str(g) for _ in range(per_gpu) for g in range(gpus)]
        return len(slots), slots
    jobs = max(1, (os.cpu_count() or 1) // max(threads, 1))
    return jobs, [None] * jobs


def _dvc(root: Path, *args: str, attempts: int = 20) -> subprocess.CompletedProcess:
    """A DVC command, retried while another DVC process holds the repository lock."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for attempt in range(attempts):
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True, env=env)
        if proc.returncode == 0 or "lock" not in (proc.stderr + proc.stdout).lower():
            return proc
        time.sleep(min(2 ** attempt, 30))
    return proc


def commit(root: Path, cell: Cell) -> None:
    """Record a finished cell in dvc.lock; LRDError, recording nothing, when its results are an
    earlier run's and params.yaml changed since (they would be recorded under params that did not
    make them)."""
    differ = old_results(root, cell, read_lock(root))
    if differ:
        raise LRDError(f"{cell.name}: its results are the run recorded in dvc.lock, made with other params than params.yaml's "
                       f"({'; '.join(differ)}); not recorded. `lrd matrix run --rerun-stale` re-runs it (a stopped re-run "
                       "resumes with `lrd matrix run`)")
    proc = _dvc(root, "commit", "--force", cell.name)
    if proc.returncode != 0:
        raise LRDError(f"`dvc commit {cell.name}` failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    # A recorded cell is done: an earlier failure's note (e.g. this very commit failing) no longer holds.
    (logs_dir(root) / f"{cell.name}.failed").unlink(missing_ok=True)


def upstream_targets(selected: list[Cell]) -> list[str]:
    """The stages the cells read (ingest / embed / discover of their datasets)."""
    return sorted({f"{STAGES[c.stage][2]}@{c.dataset}" for c in selected})


def bring_upstream(root: Path, selected: list[Cell], echo: Callable[[str], None]) -> None:
    """`dvc repro` of what the cells read (ingest / embed / discover of their datasets), once."""
    targets = upstream_targets(selected)
    if not targets:
        return
    echo(f"bringing the cells' inputs up to date: dvc repro {' '.join(targets)}")
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", *targets], cwd=root, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
    if proc.returncode != 0:
        raise LRDError(f"`dvc repro {' '.join(targets)}` failed (exit {proc.returncode}); the cells need those stages first")


@dataclasses.dataclass
class _Job:
    cell: Cell
    proc: subprocess.Popen | None  # None: a cell another process runs (adopted)
    slot: int | None  # None: an adopted cell beyond --jobs (it holds no slot of this runner's)
    since: float  # wall-clock start
    pid: int = 0

    def poll(self, root: Path) -> int | None:
        """Exit status when finished. An adopted cell counts as a success when it wrote its metrics."""
        if self.proc is not None:
            return self.proc.poll()
        # the same process, not merely the same pid: a reused pid must not be waited on forever
        if claim_holder(logs_dir(root) / f"{self.cell.name}.pid", self.cell.argv_tail) is not None:
            return None
        metrics = self.cell.paths(root).run_metrics(self.cell.model, self.cell.seed)
        return 0 if metrics.exists() and metrics.stat().st_mtime >= self.since else 1


def run(root: Path, todo: list[Cell], jobs: int, threads: int, slots: list[str | None], echo: Callable[[str], None],
        record: bool = True, poll: float = 2.0, adopt: Iterable[Cell] = (), deadline: float | None = None,
        on_start: Callable[[Cell, int], None] | None = None, epoch_seconds: dict[Cell, float] | None = None) -> list[tuple[Cell, int]]:
    """Run `todo`, `jobs` at a time, each with `threads` CPU threads (and the GPU of its slot);
    `dvc commit` each one that finishes when `record`. Cells in `adopt`, already running in other
    processes (a runner that was stopped, or a stage started by hand), take slots until they end
    and are recorded like the others. Returns the cells that failed, with their exit status.

    SIGTERM or Ctrl-C stops the cells this runner started (each keeps its last finished epoch) and
    raises KeyboardInterrupt; so does reaching `deadline` (time.time()), which returns instead.
    Before a deadline, a cell starts only when its first epoch (`epoch_seconds`, plus START_SECONDS
    for loading and compiling) can end before it: a cell stopped sooner leaves no resume point.
    `on_start(cell, pid)` is called after each start (the GPU script measures memory with it)."""
    logs, epoch_seconds = logs_dir(root), epoch_seconds or {}
    logs.mkdir(parents=True, exist_ok=True)
    queue, running, failed = list(todo), [], []
    free = list(range(jobs))

    def wait_for(cell: Cell, pid: int, slot: int | None) -> _Job:
        pid_file = logs / f"{cell.name}.pid"
        echo(f"waiting for {cell.name}, running in process {pid}")
        return _Job(cell, None, slot, pid_file.stat().st_mtime if pid_file.exists() else time.time(), pid=pid)

    for cell in adopt:
        pid = running_in(root, cell)
        if pid is not None:
            running.append(wait_for(cell, pid, free.pop(0) if free else None))

    def start(cell: Cell, slot: int) -> _Job:
        pid_file = logs / f"{cell.name}.pid"
        holder = claim(pid_file, cell.argv_tail)  # atomic: a cell another process claimed is never started twice
        if holder is not None:
            return wait_for(cell, holder.pid, slot)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
        device = slots[slot % len(slots)] if slots else None
        if device is not None:
            env["CUDA_VISIBLE_DEVICES"] = device
        (logs / f"{cell.name}.failed").unlink(missing_ok=True)
        try:
            with open(logs / f"{cell.name}.log", "ab") as out:
                proc = subprocess.Popen(cell.command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        except BaseException:
            pid_file.unlink(missing_ok=True)
            raise
        hand_over(pid_file, proc.pid)
        echo(f"started {cell.name}" + (f" on GPU {device}" if device is not None else f" ({threads} thread{'s' * (threads > 1)})")
             + f"; log: {logs / (cell.name + '.log')}")
        return _Job(cell, proc, slot, time.time(), pid=proc.pid)

    def finish(job: _Job, rc: int) -> None:
        _release(logs / f"{job.cell.name}.pid", job.pid)
        minutes = (time.time() - job.since) / 60
        if rc == 0 and record:
            try:
                commit(root, job.cell)
            except LRDError as exc:
                rc = 1
                (logs / f"{job.cell.name}.failed").write_text(f"{exc}\n")
        if rc == 0:
            echo(f"finished {job.cell.name} in {minutes:.1f} min" + (" (recorded in dvc.lock)" if record else ""))
            return
        if not (logs / f"{job.cell.name}.failed").exists():
            log_file = logs / f"{job.cell.name}.log"
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:] if log_file.exists() else []
            (logs / f"{job.cell.name}.failed").write_text(f"exit {rc}: {tail[-1] if tail else ''}\n" + "\n".join(tail) + "\n")
        failed.append((job.cell, rc))
        echo(f"FAILED {job.cell.name} (exit {rc}) after {minutes:.1f} min; the other cells go on. Log: {logs / (job.cell.name + '.log')}")

    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while queue or running:
            if deadline is not None and time.time() >= deadline:
                echo(f"time is up: stopping {len(running)} running cell(s) at their last finished epoch; {len(queue)} not started")
                _stop([job for job in running if job.proc is not None], logs)
                return failed
            while queue and free:
                cell = queue.pop(0)
                if not fits_before(deadline, epoch_seconds.get(cell)):
                    echo(f"not starting {cell.name}: its first epoch (~{epoch_seconds[cell] + START_SECONDS:.0f} s with "
                         f"start-up) would not end before the deadline, so it would leave no resume point")
                    continue
                running.append(start(cell, free.pop(0)))
                if on_start is not None and running[-1].proc is not None:
                    on_start(running[-1].cell, running[-1].proc.pid)
            time.sleep(poll)
            for job in list(running):
                rc = job.poll(root)
                if rc is not None:
                    running.remove(job)
                    if job.slot is not None:
                        free.append(job.slot)
                    finish(job, rc)
    except KeyboardInterrupt:
        echo(f"stopping {len(running)} running cell(s); each resumes from its last finished epoch next time")
        _stop([job for job in running if job.proc is not None], logs)
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return failed


def _stop(jobs: list[_Job], logs: Path) -> None:
    """SIGTERM each job (a stage then ends at once, keeping its last finished epoch) and wait for it."""
    for job in jobs:
        job.proc.send_signal(signal.SIGTERM)
    for job in jobs:
        try:
            job.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            job.proc.kill()
            job.proc.wait()
        _release(logs / f"{job.cell.name}.pid", job.pid)


def _release(pid_file: Path, pid: int) -> None:
    """Remove a finished cell's pid file, unless it names another process by now."""
    holder = read_claim(pid_file)
    if holder is None or holder.pid == pid or not pid:
        pid_file.unlink(missing_ok=True)


def load(root: Path, params_path: Path | None = None) -> dict:
    """params.yaml, checked as a whole: a bad value is an error here, not in every cell."""
    from lrd.config.check import check_params

    params = load_params(params_path or root / "params.yaml")
    check_params(params)
    return params
