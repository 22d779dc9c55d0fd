"""Run pending cells of the experiment matrix on a GPU machine that has no DVC, DuckDB or FAISS
(only torch and the scientific stack), within a wall-clock limit, and bring the results back as
archives that count like any other cell once unpacked here.

    # on the GPU machine, in a copy of the repository with data/processed/<ds>/ and, for +LRD
    # cells, data/embeddings/<ds>/ (and models/ of started cells, to resume them):
    python scripts/gpu_cells.py run --limit 540 --out $OUT --dataset Office
    # back here: unpack, then each finished cell is recorded in dvc.lock (dvc commit)
    python scripts/gpu_cells.py unpack /path/to/cells-*.tar.gz

Cells run as their stage commands (`stages/run train ...`), several per GPU: as many as the
cores allow (one thread each) and the memory holds, measured on the first cell's first epoch
(nvidia-smi). At the limit the running cells stop at their last finished epoch; their resume
points travel back too, so they continue here (or on the next GPU) where they stopped.
`--device cpu` runs the same code path on the CPU (the check before a GPU is at hand).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lrd import matrix  # noqa: E402
from lrd.errors import LRDError  # noqa: E402

PART_BYTES = 15 << 20  # what one file that comes back from a lent GPU machine may hold (16 MiB)
MAX_PARTS = 7  # at most 8 files come back: 7 archives and summary.json


def echo(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def gpu_memory(pid: int) -> int | None:
    """MiB of GPU memory process `pid` uses, from nvidia-smi; None when it cannot tell."""
    try:
        apps = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=20).stdout
        used = [int(m) for p, m in (line.split(",") for line in apps.strip().splitlines() if line) if int(p) == pid]
        return used[0] if used else None
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def probe(cell: matrix.Cell, threads: int, timeout: float = 240) -> int | None:
    """Run `cell` alone until its first epoch is saved; its GPU memory (MiB), measured. The cell is
    stopped after that epoch and resumes from it in the pool."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "CUDA_VISIBLE_DEVICES": "0", "TQDM_DISABLE": "1"}
    state = cell.paths(ROOT).resume_state(cell.model, cell.seed)
    before = state.stat().st_mtime if state.exists() else 0
    logs = matrix.logs_dir(ROOT)
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{cell.name}.log", "ab") as out:
        proc = subprocess.Popen(cell.command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    peak, start = None, time.time()
    while proc.poll() is None and time.time() - start < timeout:
        seen = gpu_memory(proc.pid)
        peak = max(peak or 0, seen) if seen else peak
        if state.exists() and state.stat().st_mtime > before:
            break
        time.sleep(1)
    if proc.poll() is None:
        proc.terminate()
        proc.wait()
    return peak


def cmd_run(args) -> int:
    deadline = time.time() + args.limit - args.grace
    params = matrix.load(ROOT)
    selected = matrix.select(matrix.cells(params), args.dataset, args.model, args.seed)
    current = matrix.states(ROOT, selected, use_dvc=False)
    todo = [s.cell for s in current if s.state in ("pending", "started", "failed")]
    missing = sorted({str(p) for c in todo for p in _inputs(c) if not p.exists()})
    if missing:
        raise LRDError(f"inputs missing here (carry them from the machine that ran the upstream stages): {', '.join(missing)}")
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    jobs, slots = matrix.default_jobs(args.threads)
    if args.device != "cpu" and slots and slots[0] is not None and todo:
        gpus = len(set(slots))
        cpu_cap = max(1, (os.cpu_count() or 1) // args.threads // gpus)
        used, total_mib = probe(todo[0], args.threads, timeout=min(240.0, max(deadline - time.time(), 0))), _total_mib()
        per_gpu = cpu_cap if not (used and total_mib) else max(1, min(cpu_cap, int(0.85 * total_mib / used)))
        echo(f"first cell's first epoch used {used} MiB of {total_mib} MiB on GPU 0: {per_gpu} cells per GPU x {gpus} GPU(s)"
             if used else f"GPU memory not measured (no nvidia-smi): {per_gpu} cells per GPU (one per {args.threads} core(s))")
        jobs, slots = matrix.default_jobs(args.threads, per_gpu)
    jobs = args.jobs or jobs
    echo(f"{len(todo)} cell(s) to run, {jobs} at a time, until {time.strftime('%H:%M:%S', time.localtime(deadline))}")
    failed = matrix.run(ROOT, todo, jobs, args.threads, slots, echo, record=False, deadline=deadline)
    return pack(selected, Path(args.out), failed)


def _total_mib() -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"], capture_output=True, text=True,
                             timeout=20).stdout
        return int(out.split()[0])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None


def _inputs(cell: matrix.Cell) -> list[Path]:
    paths = cell.paths(ROOT)
    need = [paths.processed]
    upstream = matrix.STAGES[cell.stage][2]
    if upstream == "embed":
        need.append(paths.embeddings)
    if upstream == "discover":
        need.append(paths.latent)
    return need


def pack(selected: list[matrix.Cell], out: Path, failed) -> int:
    """Archives of what the cells made (finished: results + best weights; stopped: resume points
    too), each under PART_BYTES, and summary.json: one row per cell."""
    out.mkdir(parents=True, exist_ok=True)
    summary, files = [], []
    for s in matrix.states(ROOT, selected, use_dvc=False):
        cell, paths = s.cell, s.cell.paths(ROOT)
        finished = paths.run_metrics(cell.model, cell.seed).exists()
        model_dir = paths.run_model(cell.model, cell.seed)
        if finished:
            files += sorted(paths.run_results(cell.model, cell.seed).glob("*")) + [model_dir / "best.pt"]
        elif (model_dir / "state.pt").exists():
            files += [model_dir / "state.pt"] + ([model_dir / "best.pt"] if (model_dir / "best.pt").exists() else [])
        log = matrix.logs_dir(ROOT) / f"{cell.name}.log"
        files += [log] if log.exists() else []
        metrics = s.metrics or {}
        summary.append({"cell": cell.name, "state": "finished" if finished else s.state, "epochs": s.epochs, "best_dev_NDCG@5": s.best_dev,
                        "seconds_per_epoch": round(s.seconds_per_epoch, 2) if s.seconds_per_epoch else None,
                        "train_seconds": metrics.get("train_seconds"), "eval_seconds": metrics.get("eval_seconds"),
                        "device": metrics.get("device"), "test": metrics.get("test")})
    parts, current, size = [], [], 0
    for f in (f for f in files if f.exists()):
        if current and size + f.stat().st_size > PART_BYTES:
            parts.append(current)
            current, size = [], 0
        current.append(f)
        size += f.stat().st_size
    parts += [current] if current else []
    if len(parts) > MAX_PARTS:
        echo(f"warning: {len(parts)} archives; only {MAX_PARTS} fit what comes back: run fewer cells per call")
    for i, part in enumerate(parts, start=1):
        with tarfile.open(out / f"cells-{i:02d}.tar.gz", "w:gz") as tar:
            for f in part:
                tar.add(f, arcname=str(f.relative_to(ROOT)))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    done = sum(r["state"] == "finished" for r in summary)
    echo(f"{done} of {len(summary)} cells finished; {len(parts)} archive(s) and summary.json in {out}")
    for row in summary:
        if row["state"] != "pending":
            echo(f"  {row['cell']}: {row['state']}, {row['epochs']} epochs, {row['seconds_per_epoch'] or '-'} s per epoch (training + dev ranking)")
    return 1 if failed else 0


ALLOWED = ("results/", "models/", "logs/matrix/")
RESULT_FILES = ("metrics.json", "ranks.parquet", "curve.csv")
LRD_STAGES = ("train_lrd", "train_ablation")  # their cells also write relations.pt (what compare relabels with)


def result_files(cell: matrix.Cell) -> tuple[str, ...]:
    return RESULT_FILES + (("relations.pt",) if cell.stage in LRD_STAGES else ())


def cmd_unpack(args) -> int:
    """Take from the archives the whole, consistent, newer cells (only results/, models/ and
    logs/matrix/ paths), never overwriting a finished result recorded here; then record each
    finished one in dvc.lock. Nothing is written until every archive has been read to its end."""
    cells = matrix.cells(matrix.load(ROOT))
    staging = Path(tempfile.mkdtemp(prefix=".unpack-tmp-", dir=ROOT))
    try:
        names = set()
        for archive in args.archives:
            names |= _extract(Path(archive), staging)
        finished = []
        for cell in cells:
            files = _cell_files(cell, names)
            if files:
                reason = _refusal(cell, staging, files)
                if reason:
                    echo(f"skipped {cell.name}: {reason}")
                    continue
                if cell.paths(staging).run_metrics(cell.model, cell.seed).exists():
                    finished.append(cell)
                for name in files:
                    target = ROOT / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(staging / name, target)
                names -= set(files)
        for name in sorted(n for n in names if not n.startswith("logs/")):
            echo(f"skipped {name}: no cell of params.yaml's matrix writes it")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for cell in finished:
        if args.no_record:
            echo(f"unpacked {cell.name}")
        else:
            matrix.commit(ROOT, cell)
            echo(f"unpacked {cell.name} and recorded it in dvc.lock")
    echo(f"{len(finished)} finished cell(s) unpacked; resume points of the others are in models/")
    return 0


def _extract(archive: Path, staging: Path) -> set[str]:
    """Every member of `archive` into `staging` (names checked first); LRDError naming the archive
    when it is truncated or damaged, so that nothing of it is taken."""
    names = set()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the archive to its end: a truncated one fails here
            bad = [m.name for m in members if not m.isfile() or not m.name.startswith(ALLOWED) or ".." in Path(m.name).parts]
            if bad:
                raise LRDError(f"{archive}: refusing {bad[0]!r} (only files under results/, models/ and logs/matrix/)")
            for m in members:
                target = staging / m.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.utime(target, (m.mtime, m.mtime))  # when the GPU machine wrote it: "newer" compares these
                names.add(m.name)
    except (EOFError, tarfile.TarError, zlib.error, OSError) as exc:
        raise LRDError(f"{archive}: truncated or damaged archive ({type(exc).__name__}: {str(exc) or 'ends early'}); "
                       "nothing unpacked: copy it again from the GPU machine's output") from None
    return names


def _cell_files(cell: matrix.Cell, names: set[str]) -> list[str]:
    """The archive's files of `cell`: its results, its models/ folder, its log."""
    paths = cell.paths(Path("."))
    prefixes = (f"{paths.run_results(cell.model, cell.seed)}/", f"{paths.run_model(cell.model, cell.seed)}/")
    log = f"logs/matrix/{cell.name}.log"
    return sorted(n for n in names if n.startswith(prefixes) or n == log)


def _refusal(cell: matrix.Cell, staging: Path, files: list[str]) -> str | None:
    """Why the archive's files of `cell` are not taken, None to take them: a finished cell only
    whole (every result file and best.pt) and consistent (its test metrics are those its ranks
    give), never over a finished result here that dvc.lock records or that is newer; a resume
    point never over a finished result or a newer resume point here."""
    here, there = cell.paths(ROOT), cell.paths(staging)
    local = here.run_metrics(cell.model, cell.seed)
    results = here.run_results(cell.model, cell.seed)
    arrived = there.run_metrics(cell.model, cell.seed)
    if not arrived.exists():
        state, local_state = there.resume_state(cell.model, cell.seed), here.resume_state(cell.model, cell.seed)
        if local.exists():
            return f"finished here ({local}); the archive holds only a resume point"
        if state.exists() and local_state.exists() and local_state.stat().st_mtime >= state.stat().st_mtime:
            return f"the resume point here ({local_state}) is as new or newer"
        return None
    missing = [f for f in result_files(cell) if not (there.run_results(cell.model, cell.seed) / f).exists()]
    missing += [] if (there.run_model(cell.model, cell.seed) / "best.pt").exists() else ["best.pt"]
    if missing:
        return f"the archive lacks {', '.join(missing)} of this finished cell (a partial copy)"
    wrong = _inconsistent(cell, there)
    if wrong:
        return wrong
    if local.exists():
        if cell.name in matrix.lock_stages(ROOT) and all(
                matrix._md5(results / f) == _locked_md5(cell, f"{results.relative_to(ROOT)}/{f}") for f in result_files(cell)):
            return f"a finished result recorded in dvc.lock is here ({local}); it is never overwritten"
        if local.stat().st_mtime >= arrived.stat().st_mtime:
            return f"the finished result here ({local}) is as new or newer"
    return None


def _locked_md5(cell: matrix.Cell, path: str) -> str | None:
    entry = matrix.read_lock(ROOT).get(cell.name) or {}
    return next((o.get("md5") for o in entry.get("outs") or [] if isinstance(o, dict) and o.get("path") == path), None)


def _inconsistent(cell: matrix.Cell, there) -> str | None:
    """Why the archive's metrics.json is not what its ranks.parquet gives, None when it is."""
    import pyarrow.parquet as pq

    from lrd.evaluate import ranking_metrics

    folder = there.run_results(cell.model, cell.seed)
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        ranks = pq.read_table(folder / "ranks.parquet", columns=["split", "rank"]).to_pydict()
    except Exception as exc:  # any damage: the cell is refused, the others go on
        return f"its metrics.json or ranks.parquet cannot be read ({type(exc).__name__})"
    if not isinstance(metrics, dict) or [metrics.get(k) for k in ("model", "seed")] != [cell.model, cell.seed]:
        return "its metrics.json is not this cell's (model or seed differ)"
    test = [r for split, r in zip(ranks["split"], ranks["rank"]) if split == "test"]
    recorded = metrics.get("test") or {}
    if not test or not recorded:
        return "its metrics.json or ranks.parquet holds no test results"
    computed = ranking_metrics(test)
    off = [k for k, v in recorded.items() if k in computed and not (isinstance(v, (int, float)) and abs(v - computed[k]) <= 1e-9)]
    if off:
        return (f"its metrics.json says test {off[0]} = {recorded[off[0]]}, its ranks.parquet gives {computed[off[0]]:.6f}: "
                "the files are not of one run")
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run pending cells within a time limit and pack what they made")
    run.add_argument("--limit", type=float, required=True, help="wall-clock seconds this command may take in all")
    run.add_argument("--grace", type=float, default=60, help="seconds kept back for stopping the cells and packing (default 60)")
    run.add_argument("--out", required=True, help="folder for the archives and summary.json")
    run.add_argument("--dataset", action="append", default=[])
    run.add_argument("--model", action="append", default=[])
    run.add_argument("--seed", action="append", type=int, default=[])
    run.add_argument("--threads", type=int, default=1, help="CPU threads per cell (default 1)")
    run.add_argument("--jobs", type=int, default=None, help="cells at a time (default: measured, see above)")
    run.add_argument("--device", choices=["auto", "cpu"], default="auto")
    unpack = sub.add_parser("unpack", help="unpack archives here and record finished cells in dvc.lock")
    unpack.add_argument("archives", nargs="+")
    unpack.add_argument("--no-record", action="store_true", help="do not `dvc commit` the cells")
    args = parser.parse_args(argv)
    os.chdir(ROOT)
    try:
        if args.command == "unpack":
            return cmd_unpack(args)
        with matrix.runner_lock(matrix.logs_dir(ROOT)):  # one runner per workspace, this one too
            return cmd_run(args)
    except LRDError as exc:
        echo(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
