"""Benchmark the FAISS indexes of `lrd.embed.index.build_index` at catalogue scale.

Data: `--n` synthetic 384-d CLUSTERED unit vectors (`--clusters` Gaussian centres; each point is
its centre plus noise of norm ~`--noise`, mostly inside a shared `--intrinsic-dim`-dimensional
subspace, as text embeddings have a low intrinsic dimension; then normalised), generated in
chunks; `--queries` queries drawn the same way. Ground truth: exact top-k with
faiss.IndexFlatIP. Then build_index with IndexConfig(type="ivfpq") and IndexConfig(type="hnsw")
(the other settings at their defaults, as in params.yaml): build seconds, search seconds for
all queries (k = 20), recall@k against the exact top-k, serialised index size and peak RSS.
`--types ivf_ondisk` adds the sharded IVF with on-disk lists (`--shards`, read from the vectors
memory-mapped, as from a store): its lists file is reported as `data_bytes`, and its search reads
the lists through the page cache (warm here: they were just written).

Each phase (generate, exact, ivfpq, hnsw) runs in its own subprocess, sharing the vectors
through .npy files in a temporary folder, so each peak RSS is that phase's alone (the launcher
stays small: a child's ru_maxrss starts from its parent's high-water mark on Linux).
Target (1,000,000 vectors): build + search within 10 minutes and 8 GiB, per index type.

    python benchmarks/bench_faiss.py               # 1M vectors, 10k queries
    python benchmarks/bench_faiss.py --n 50_000    # smoke
    python benchmarks/bench_faiss.py --n 200_000 --queries 2_000 --types ivfpq,ivf_ondisk --shards 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit_result, peak_rss_mib, report, run_worker  # noqa: E402

TARGET_S = 600.0
TARGET_GIB = 8.0


def generate(folder: Path, n: int, n_queries: int, dim: int, clusters: int, noise: float, intrinsic: int,
             seed: int, chunk: int = 100_000) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = None
    if intrinsic:
        basis = np.linalg.qr(rng.standard_normal((dim, intrinsic)))[0].T.astype(np.float32)  # r x dim, orthonormal rows

    def draw(m: int) -> np.ndarray:
        x = centres[rng.integers(0, clusters, m)]
        if basis is not None:  # ~90% of the noise energy in the subspace, the rest isotropic
            x += (0.95 * noise / np.sqrt(intrinsic)) * (rng.standard_normal((m, intrinsic), dtype=np.float32) @ basis)
            x += (0.3 * noise / np.sqrt(dim)) * rng.standard_normal((m, dim), dtype=np.float32)
        else:
            x += (noise / np.sqrt(dim)) * rng.standard_normal((m, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    for name, rows in (("base", n), ("queries", n_queries)):
        out = np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=np.float32, shape=(rows, dim))
        for lo in range(0, rows, chunk):
            out[lo : lo + chunk] = draw(min(chunk, rows - lo))
        out.flush()
        del out


def exact(folder: Path, k: int) -> dict:
    import faiss
    import numpy as np

    base, queries = np.load(folder / "base.npy"), np.load(folder / "queries.npy")
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    t1 = time.perf_counter()
    scores, rows = index.search(queries, k)
    t2 = time.perf_counter()
    np.save(folder / "truth.npy", rows)
    # How separable the top-k is: the gap between the k-th and (k+1)-th... approximated by the
    # spread of the top-k scores (small spread = neighbours nearly tied = harder for ANN).
    return {"build_s": t1 - t0, "search_s": t2 - t1, "threads": faiss.omp_get_max_threads(),
            "top1_score_mean": float(scores[:, 0].mean()), "topk_score_mean": float(scores[:, -1].mean())}


def approximate(folder: Path, kind: str, k: int, shards: int) -> dict:
    import faiss
    import numpy as np

    from lrd.config.embed import IndexConfig
    from lrd.embed.index import build_index
    from lrd.embed.store import write_index

    base = np.load(folder / "base.npy", mmap_mode="r" if kind == "ivf_ondisk" else None)
    queries, truth = np.load(folder / "queries.npy"), np.load(folder / "truth.npy")
    rss_loaded = peak_rss_mib()
    cfg = IndexConfig(type=kind, shards=shards) if kind == "ivf_ondisk" else IndexConfig(type=kind)
    steps: dict[str, list[float]] = {}
    if kind == "ivf_ondisk":  # time the steps build_index runs; fill_shard is what one worker does per shard
        import lrd.embed.index as index_module

        for name in ("train_ivf", "fill_shard", "merge_shards"):
            def timed(*a, _f=getattr(index_module, name), _name=name, **kw):
                w, c = time.perf_counter(), time.process_time()
                out = _f(*a, **kw)
                step = steps.setdefault(_name, [0.0, 0.0])
                step[0] += time.perf_counter() - w
                step[1] += time.process_time() - c
                return out

            setattr(index_module, name, timed)
    # CPU seconds beside wall seconds: on a machine shared with other jobs they are the steadier rate.
    t0, c0 = time.perf_counter(), time.process_time()
    index, info = build_index(base, cfg, seed=0, workdir=folder / "work")
    t1, c1 = time.perf_counter(), time.process_time()
    _, rows = index.search(queries, k)
    t2, c2 = time.perf_counter(), time.process_time()
    hits = (rows[:, :, None] == truth[:, None, :]).any(-1).sum(1)
    recall = float(hits.mean() / k)
    written = write_index(index, folder / f"{kind}.faiss")
    t3 = time.perf_counter()
    (folder / f"{kind}.faiss").unlink()
    if "data_file" in written:
        (folder / written["data_file"]).unlink()
    return {"build_s": t1 - t0, "search_s": t2 - t1, "write_s": t3 - t2, "recall": recall, "index_bytes": written["bytes"],
            "data_bytes": written.get("data_bytes", 0), "build_cpu_s": c1 - c0, "search_cpu_s": c2 - c1, "steps": steps,
            "info": info, "rss_after_loading_vectors_mib": rss_loaded, "threads": faiss.omp_get_max_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--clusters", type=int, default=2000)
    ap.add_argument("--noise", type=float, default=1.0, help="noise norm relative to the unit centre")
    ap.add_argument("--intrinsic-dim", type=int, default=32, help="noise subspace dimension (0: isotropic noise)")
    ap.add_argument("--types", default="ivfpq,hnsw", help="comma-separated index types to build (ivfpq, hnsw, ivf_ondisk, flat)")
    ap.add_argument("--shards", type=int, default=4, help="ivf_ondisk: shards the vectors are added in")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        phase, folder = args.worker[0], Path(args.worker[1])
        t0 = time.perf_counter()
        if phase == "generate":
            generate(folder, args.n, args.queries, args.dim, args.clusters, args.noise, args.intrinsic_dim, args.seed)
            emit_result({"seconds": time.perf_counter() - t0})
        elif phase == "exact":
            emit_result(exact(folder, args.k))
        else:
            emit_result(approximate(folder, phase, args.k, args.shards))
        return

    extra = ["--n", str(args.n), "--queries", str(args.queries), "--dim", str(args.dim), "--k", str(args.k),
             "--clusters", str(args.clusters), "--noise", str(args.noise), "--intrinsic-dim", str(args.intrinsic_dim),
             "--seed", str(args.seed), "--shards", str(args.shards)]
    report("n", args.n)
    report("queries", args.queries)
    report("dim", args.dim)
    report("k", args.k)
    report("vectors_bytes", args.n * args.dim * 4)
    with tempfile.TemporaryDirectory(prefix="bench_faiss_") as tmp:
        g, wall = run_worker(__file__, ["generate", tmp], extra=extra)
        report("generate.seconds", g["seconds"])
        report("generate.peak_rss_mib", g["peak_rss_mib"])
        e, wall = run_worker(__file__, ["exact", tmp], extra=extra)
        report("exact.threads", e["threads"])
        report("exact.add_seconds", e["build_s"])
        report("exact.search_seconds", e["search_s"])
        report("exact.queries_per_second", args.queries / e["search_s"])
        report("exact.mean_top1_score", e["top1_score_mean"])
        report(f"exact.mean_top{args.k}_score", e["topk_score_mean"])
        report("exact.peak_rss_mib", e["peak_rss_mib"])
        for kind in [t.strip() for t in args.types.split(",") if t.strip()]:
            r, wall = run_worker(__file__, [kind, tmp], extra=extra)
            p = kind
            report(f"{p}.settings", " ".join(f"{a}={b}" for a, b in r["info"].items()))
            report(f"{p}.build_seconds", r["build_s"])
            report(f"{p}.build_cpu_seconds", r["build_cpu_s"])
            for step, (wall_s, cpu_s) in r["steps"].items():
                report(f"{p}.{step}_seconds", wall_s)
                report(f"{p}.{step}_cpu_seconds", cpu_s)
            report(f"{p}.search_seconds", r["search_s"])
            report(f"{p}.search_cpu_seconds", r["search_cpu_s"])
            report(f"{p}.queries_per_second", args.queries / r["search_s"])
            report(f"{p}.build_plus_search_seconds", r["build_s"] + r["search_s"])
            report(f"{p}.recall_at_{args.k}", r["recall"])
            report(f"{p}.index_bytes", r["index_bytes"])
            if r["data_bytes"]:
                report(f"{p}.data_bytes", r["data_bytes"])
            report(f"{p}.build_vectors_per_second", args.n / r["build_s"])
            report(f"{p}.write_index_seconds", r["write_s"])
            report(f"{p}.rss_after_loading_vectors_mib", r["rss_after_loading_vectors_mib"])
            report(f"{p}.peak_rss_mib", r["peak_rss_mib"])
            report(f"{p}.subprocess_wall_seconds", wall)
            report(f"{p}.meets_target",
                   r["build_s"] + r["search_s"] < TARGET_S and r["peak_rss_mib"] < TARGET_GIB * 1024)
    report("target_seconds", TARGET_S)
    report("target_peak_gib", TARGET_GIB)
    report("children_peak_rss_mib_max_over_all_phases", peak_rss_mib(children=True))


if __name__ == "__main__":
    main()
