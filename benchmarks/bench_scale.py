"""The Ray engines against the one-process paths: embedding and pair labelling.

1. --embed: `--texts` synthetic item texts ("<title> (<year>). Genres: ..."; ML-100K's texts average
   47 characters, these about as many) encoded with params.yaml `embed` (all-MiniLM-L6-v2 by
   default, resolved by encoders.resolve_model_path) by the local engine
   (lrd.embed.encoders.encode on encoders.resolve_devices, torch threads --threads) and by the Ray
   engine (lrd.embed.ray_engine.encode with `engine: ray`, `ray_workers: --workers`) on a local
   Ray cluster of --cpus CPUs. No vector cache: both really encode; loading the model is inside
   both timings (the actors start and load theirs inside the job). Ray start-up (ray.init) is
   timed apart. The Ray vectors' largest difference from the local ones is printed.
   Targets: Ray wall / local wall <= 1.3; the driver's peak RSS during the Ray call < 2 GiB.
2. --label: `--pairs` synthetic candidate pairs over `--items` items, in buckets of --bucket pairs
   (discover.row_group_size's default), each bucket a head range with random tails drawn from a
   generator seeded by (seed, bucket index), so both engines label the same pairs: labelled by a
   randomly initialised LatentRelationDiscovery (--text-dim random unit vectors, --dim, 3 + --latent
   relation types) through labels.pair_tables / label_chunk, streamed into a temporary
   latent.parquet by labels.write_labelled (local: one process, --label-threads torch threads)
   and by discover.ray_engine.run_buckets (a pool of --workers actors of SyntheticLabeller below,
   each generating its bucket's pairs and calling label_chunk). Generating a bucket's pairs
   (a few ms a million) is inside both timings, as the actors' start-up is inside Ray's; no
   readout observer on either side. Pairs/s per core: local = pairs/s / --label-threads; Ray = pairs/s / --cpus (the
   cluster's CPUs; the driver, which writes the Parquet, runs beside them and is not counted:
   its CPU seconds are printed). Targets: Ray per core / local per core >= 0.8; the driver's peak
   RSS during the Ray call < 2 GiB and flat in --pairs (the buckets are streamed: compare runs
   at two sizes).
DDP (1 process vs N gloo ranks) is `bench_train.py --ddp N`.

Each part runs every engine in a fresh subprocess, so that each driver's RSS is its own:
"peak RSS during the call" is sampled from /proc/self/status every 20 ms in a thread while the
engine call runs (VmRSS; RssAnon beside it, without the file and shared-memory pages that Ray's
object store maps into the driver); the subprocess's getrusage peak (whole life) is printed too.
With neither --embed nor --label, both run. Timings depend on the cores available:
run on an otherwise idle machine, and say which one.

    python benchmarks/bench_scale.py                                    # 100k texts, 100M pairs
    python benchmarks/bench_scale.py --texts 2000 --pairs 2_000_000     # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, emit_result, report, run_worker  # noqa: E402

# This checkout's lrd, even where the virtualenv has another one installed (a git worktree).
sys.path.insert(0, str(REPO))

TARGET_EMBED_RATIO = 1.3  # Ray wall / local wall, at most
TARGET_LABEL_RATIO = 0.8  # Ray pairs/s per core / local pairs/s per core, at least
TARGET_DRIVER_GIB = 2.0  # the driver's peak RSS during a Ray call, below

WORDS = ("night day man woman love war king city dark star last first house river blue red dead secret game "
         "story life road home world heart time dream fire wild street ghost lost great little big young old "
         "summer winter island room sea sky stone iron glass golden silent broken hidden")
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


# -- measuring ------------------------------------------------------------------------------------

class RssSampler:
    """Peak VmRSS and RssAnon of this process (MiB), sampled every `every` seconds in a thread."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak, self.peak_anon, self.samples = every, 0.0, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def read() -> tuple[float, float]:
        rss = anon = 0.0
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1]) / 1024
                    elif line.startswith("RssAnon:"):
                        anon = int(line.split()[1]) / 1024
        except OSError:
            pass
        return rss, anon

    def _run(self) -> None:
        while True:
            rss, anon = self.read()
            self.peak, self.peak_anon, self.samples = max(self.peak, rss), max(self.peak_anon, anon), self.samples + 1
            if self._stop.wait(self.every):
                return

    def __enter__(self):
        self.before = self.read()[0]
        self._cpu = _cpu_seconds()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        rss, anon = self.read()
        self.peak, self.peak_anon = max(self.peak, rss), max(self.peak_anon, anon)
        self.cpu_seconds = _cpu_seconds() - self._cpu

    def result(self) -> dict:
        return {"rss_before_mib": self.before, "call_peak_rss_mib": self.peak, "call_peak_rss_anon_mib": self.peak_anon,
                "driver_cpu_seconds": self.cpu_seconds, "rss_samples": self.samples}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_ray(cpus: int) -> float:
    """A local Ray cluster of `cpus` CPUs whose workers import this checkout; seconds it took."""
    import logging

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}},
             logging_level=logging.WARNING, log_to_driver=False)
    return time.perf_counter() - t0


# -- 1. embedding -----------------------------------------------------------------------------------

def synthetic_texts(n: int, seed: int) -> list[str]:
    """ML-100K-like item texts: '<1-5 title words> (<year>). Genres: <1-3 genres>'."""
    import numpy as np

    rng = np.random.default_rng(seed)
    words, genres = WORDS.split(), np.array(GENRES)
    n_words, years, n_genres = rng.integers(1, 6, n), rng.integers(1920, 2021, n), rng.integers(1, 4, n)
    picks, gpicks = rng.integers(0, len(words), (n, 5)), rng.integers(0, len(genres), (n, 3))
    return [f"{' '.join(words[w].capitalize() for w in picks[i, : n_words[i]])} ({years[i]}). "
            f"Genres: {', '.join(genres[gpicks[i, : n_genres[i]]])}" for i in range(n)]


def embed_config(workers: int | None = None):
    """params.yaml `embed` (of this checkout), with `engine: ray` and `ray_workers` when workers is given."""
    import dataclasses

    from lrd.config.base import load_params
    from lrd.config.embed import EmbedConfig

    cfg = EmbedConfig.from_params(load_params(REPO / "params.yaml"))
    return dataclasses.replace(cfg, engine="ray", ray_workers=workers) if workers else cfg


def embed_worker(args: argparse.Namespace, phase: str, vectors_file: str) -> None:
    import numpy as np

    from lrd.embed import encoders

    texts = synthetic_texts(args.texts, args.seed)
    if phase == "embed-local":
        import torch

        torch.set_num_threads(args.threads or args.cpus)
        cfg = embed_config()
        path = encoders.resolve_model_path(cfg.model)
        devices = encoders.resolve_devices(cfg)
        with RssSampler() as rss:
            t0 = time.perf_counter()
            vectors, dim = encoders.encode(cfg, path, texts, devices)
            seconds = time.perf_counter() - t0
        np.save(vectors_file, vectors)
        out = {"devices": devices, "torch_threads": torch.get_num_threads()}
    else:
        from lrd.embed import ray_engine

        cfg = embed_config(args.workers)
        path = encoders.resolve_model_path(cfg.model)
        startup = start_ray(args.cpus)
        with tempfile.TemporaryDirectory(prefix="bench_scale_embed_") as staging, RssSampler() as rss:
            t0 = time.perf_counter()
            vectors, dim, devices = ray_engine.encode(cfg, path, texts, Path(staging))
            seconds = time.perf_counter() - t0
        local = np.load(vectors_file, mmap_mode="r") if vectors_file and Path(vectors_file).exists() else None
        out = {"devices": devices, "ray_startup_seconds": startup,
               "max_abs_diff_vs_local": float(np.abs(vectors - local).max()) if local is not None and local.shape == vectors.shape else None}
    emit_result({"seconds": seconds, "texts": len(texts), "dim": int(dim), "model": cfg.model, **out, **rss.result()})


# -- 2. labelling ----------------------------------------------------------------------------------

def buckets_for(pairs: int, bucket: int, n_items: int) -> list[dict]:
    """`pairs` split into buckets of `bucket` pairs (the last smaller), each over its own head range."""
    import numpy as np

    sizes = [min(bucket, pairs - lo) for lo in range(0, pairs, bucket)]
    if len(sizes) > n_items:
        raise SystemExit(f"--pairs {pairs} / --bucket {bucket} makes {len(sizes)} buckets, more than --items {n_items}")
    edges = np.linspace(1, n_items + 1, len(sizes) + 1).astype(np.int64)
    return [{"bucket": i, "pairs": s, "lo": int(lo), "hi": int(hi)} for i, (s, lo, hi) in enumerate(zip(sizes, edges[:-1], edges[1:]))]


def synthetic_pairs(seed: int, bucket: int, pairs: int, lo: int, hi: int, n_items: int):
    """(pair keys head * (n_items + 1) + tail, source) of one bucket: heads lo..hi-1 in order, `pairs`
    spread evenly over them, each with a random other item as tail; the same for the same arguments."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng([seed, bucket])
    counts = np.full(hi - lo, pairs // (hi - lo), np.int64)
    counts[: pairs % (hi - lo)] += 1
    heads = np.repeat(np.arange(lo, hi, dtype=np.int64), counts)
    tails = rng.integers(1, n_items, pairs, dtype=np.int64)
    tails += tails >= heads  # any item but the head
    source = pa.DictionaryArray.from_arrays(pa.array(rng.integers(0, 3, pairs, dtype=np.int8)), pa.array(["cooccur", "knn", "both"]))
    return heads * (n_items + 1) + tails, source


class SyntheticLabeller:
    """A Ray actor for discover.ray_engine.run_buckets: a bucket's synthetic pairs, labelled (labels.LABELLED rows)."""

    def __init__(self, tables: list, latent: tuple[int, int], latent_ids, n_items: int, seed: int, threads: int):
        import warnings

        import torch

        torch.set_num_threads(threads)
        with warnings.catch_warnings():  # Ray hands the arrays over read-only; they are only read
            warnings.simplefilter("ignore", UserWarning)
            self.tables = tuple(torch.from_numpy(t) for t in tables)
        self.latent, self.latent_ids, self.n_items, self.seed = slice(*latent), latent_ids, n_items, seed

    def __call__(self, batch: dict):
        import pyarrow as pa

        from lrd.discover.labels import LABELLED, label_chunk

        parts = [label_chunk(*synthetic_pairs(self.seed, int(b), int(p), int(lo), int(hi), self.n_items), self.n_items + 1,
                             self.tables, self.latent, self.latent_ids)
                 for b, p, lo, hi in zip(batch["bucket"], batch["pairs"], batch["lo"], batch["hi"])]
        return pa.concat_tables(parts) if parts else LABELLED.empty_table()


def label_setup(args: argparse.Namespace):
    """(pair tables, latent slice, latent relation ids) of a randomly initialised LRD module."""
    import numpy as np
    import torch

    from lrd.discover.labels import pair_tables
    from lrd.models.lrd import LatentRelationDiscovery

    torch.manual_seed(args.seed)
    text = torch.randn(args.items + 1, args.text_dim)
    text /= text.norm(dim=1, keepdim=True)
    text[0] = 0.0
    first = 3  # virtual + two predefined types, then the latent ones (as bench_discover.py)
    lrd = LatentRelationDiscovery(text, args.dim, first + args.latent)
    return pair_tables(lrd), slice(first, first + args.latent), np.arange(first, first + args.latent, dtype=np.int16)


def label_scale(args: argparse.Namespace):
    """The strength scale (labels.write_labelled) of random decoder embeddings over the same text vectors."""
    import torch

    from lrd.discover.strength import strength_scale

    torch.manual_seed(args.seed)
    text = torch.randn(args.items + 1, args.text_dim)
    text[0] = 0.0
    return strength_scale(text.numpy(), torch.randn(args.items + 1, args.dim).numpy(), torch.randn(args.latent, args.dim).numpy())


def label_worker(args: argparse.Namespace, phase: str) -> None:
    import pyarrow.parquet as pq
    import torch

    from lrd.discover.labels import label_chunk, write_labelled

    t0 = time.perf_counter()
    tables, latent, latent_ids = label_setup(args)
    setup = time.perf_counter() - t0
    n, base = args.items, args.items + 1
    buckets = buckets_for(args.pairs, args.bucket, n)
    out = {"setup_seconds": setup, "buckets": len(buckets), "relations_R": int(tables[0].shape[1])}
    with tempfile.TemporaryDirectory(prefix="bench_scale_label_") as tmp:
        path = Path(tmp) / "latent.parquet"
        if phase == "label-local":
            torch.set_num_threads(args.label_threads)
            chunks = (label_chunk(*synthetic_pairs(args.seed, b["bucket"], b["pairs"], b["lo"], b["hi"], n), base, tables, latent, latent_ids)
                      for b in buckets)
            scale = label_scale(args)  # outside the timed part: computed once per run
            with RssSampler() as rss:
                t0 = time.perf_counter()
                rows = write_labelled(path, chunks, base, scale)
                seconds = time.perf_counter() - t0
            cores = args.label_threads
            out["torch_threads"] = torch.get_num_threads()
        else:
            from lrd.discover.ray_engine import run_buckets
            from lrd.cluster import connect

            out["ray_startup_seconds"] = start_ray(args.cpus)
            ray = connect("discover.engine")  # the running cluster, with the stage's Ray Data settings
            actor_args = {"tables": [t.numpy() for t in tables], "latent": (latent.start, latent.stop), "latent_ids": latent_ids,
                          "n_items": n, "seed": args.seed}
            scale = label_scale(args)
            with RssSampler() as rss:
                t0 = time.perf_counter()
                rows, counts = run_buckets(ray, path, buckets, SyntheticLabeller, actor_args, base, None, args.workers, scale)
                seconds = time.perf_counter() - t0
            cores = args.cpus
            out.update(workers=min(args.workers or args.cpus, len(buckets)), pairs_by_source=counts)
        meta = pq.ParquetFile(path).metadata
        out.update(output_bytes=path.stat().st_size, row_groups=meta.num_row_groups)
    emit_result({"seconds": seconds, "rows": rows, "cores": cores, "pairs_per_second": rows / seconds,
                 "pairs_per_second_per_core": rows / seconds / cores, **out, **rss.result()})


# -- output ------------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embed", action="store_true", help="run part 1 (default: all parts)")
    ap.add_argument("--label", action="store_true", help="run part 2")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    ap.add_argument("--workers", type=int, default=2, help="Ray actors (embed.ray_workers / discover.ray_workers)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the local embedding; default --cpus")
    ap.add_argument("--seed", type=int, default=0, help="synthetic texts, pairs and LRD weights")
    ap.add_argument("--texts", type=int, default=100_000, help="1: item texts to encode")
    ap.add_argument("--pairs", type=int, default=100_000_000, help="2: candidate pairs to label")
    ap.add_argument("--items", type=int, default=100_000, help="2: items the pairs are drawn over")
    ap.add_argument("--bucket", type=int, default=1_000_000, help="2: pairs per bucket (a Ray task; a row group)")
    ap.add_argument("--text-dim", type=int, default=384, help="2: the LRD module's text vector size")
    ap.add_argument("--dim", type=int, default=64, help="2: the LRD module's dim")
    ap.add_argument("--latent", type=int, default=16, help="2: K latent types")
    ap.add_argument("--label-threads", type=int, default=1, help="2: torch threads of the local labelling (its cores)")
    ap.add_argument("--json", default=None, help="also write the results as JSON to this path")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)  # one engine's run in a fresh process
    args = ap.parse_args()
    if args.worker:
        phase, *rest = args.worker
        return embed_worker(args, phase, rest[0] if rest else "") if phase.startswith("embed") else label_worker(args, phase)
    if not (args.embed or args.label):
        args.embed = args.label = True

    results = {"cpu_count": os.cpu_count(), "ray_cpus": args.cpus, "ray_workers": args.workers,
               "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    rows = []  # (measure, value, target, meets) for the table
    extra = sys.argv[1:]  # the workers read the same flags
    with tempfile.TemporaryDirectory(prefix="bench_scale_") as tmp:
        if args.embed:
            local, _ = run_worker(__file__, ["embed-local", str(Path(tmp) / "local.npy")], extra)
            ray, _ = run_worker(__file__, ["embed-ray", str(Path(tmp) / "local.npy")], extra)
            ratio = ray["seconds"] / local["seconds"]
            results["embed"] = {"local": local, "ray": ray, "ratio_ray_vs_local": ratio,
                                "meets_target": ratio <= TARGET_EMBED_RATIO and ray["call_peak_rss_mib"] < TARGET_DRIVER_GIB * 1024}
            for k, v in (("texts", local["texts"]), ("model", local["model"]), ("local_devices", local["devices"]),
                         ("local_torch_threads", local["torch_threads"]), ("ray_devices", ray["devices"]),
                         ("local_seconds", local["seconds"]), ("ray_startup_seconds", ray["ray_startup_seconds"]),
                         ("ray_seconds", ray["seconds"]), ("ratio_ray_vs_local", ratio),
                         ("max_abs_diff_ray_vs_local", ray["max_abs_diff_vs_local"]),
                         ("local_driver_call_peak_rss_mib", local["call_peak_rss_mib"]),
                         ("ray_driver_rss_before_mib", ray["rss_before_mib"]),
                         ("ray_driver_call_peak_rss_mib", ray["call_peak_rss_mib"]),
                         ("ray_driver_call_peak_rss_anon_mib", ray["call_peak_rss_anon_mib"]),
                         ("ray_driver_process_peak_rss_mib", ray["peak_rss_mib"]),
                         ("ray_driver_cpu_seconds", ray["driver_cpu_seconds"])):
                report(f"embed.{k}", v)
            rows += [("embed: local wall s", local["seconds"], "", ""),
                     ("embed: Ray start-up s", ray["ray_startup_seconds"], "", ""),
                     ("embed: Ray wall s", ray["seconds"], "", ""),
                     ("embed: Ray / local wall", ratio, f"<= {TARGET_EMBED_RATIO}", ratio <= TARGET_EMBED_RATIO),
                     ("embed: Ray driver peak RSS MiB", ray["call_peak_rss_mib"], f"< {TARGET_DRIVER_GIB * 1024:.0f}",
                      ray["call_peak_rss_mib"] < TARGET_DRIVER_GIB * 1024)]
        if args.label:
            local, _ = run_worker(__file__, ["label-local"], extra)
            ray, _ = run_worker(__file__, ["label-ray"], extra)
            ratio = ray["pairs_per_second_per_core"] / local["pairs_per_second_per_core"]
            results["label"] = {"local": local, "ray": ray, "ratio_ray_vs_local_per_core": ratio,
                                "meets_target": ratio >= TARGET_LABEL_RATIO and ray["call_peak_rss_mib"] < TARGET_DRIVER_GIB * 1024}
            for k, v in (("pairs", args.pairs), ("items", args.items), ("buckets", local["buckets"]), ("relations_R", local["relations_R"]),
                         ("rows_local", local["rows"]), ("rows_ray", ray["rows"]), ("ray_pairs_by_source", ray["pairs_by_source"]),
                         ("local_cores", local["cores"]), ("ray_cores", ray["cores"]), ("ray_workers", ray["workers"]),
                         ("setup_seconds", local["setup_seconds"]), ("local_seconds", local["seconds"]),
                         ("ray_startup_seconds", ray["ray_startup_seconds"]), ("ray_seconds", ray["seconds"]),
                         ("local_pairs_per_second", local["pairs_per_second"]), ("ray_pairs_per_second", ray["pairs_per_second"]),
                         ("local_pairs_per_second_per_core", local["pairs_per_second_per_core"]),
                         ("ray_pairs_per_second_per_core", ray["pairs_per_second_per_core"]), ("ratio_ray_vs_local_per_core", ratio),
                         ("output_bytes_local", local["output_bytes"]), ("output_bytes_ray", ray["output_bytes"]),
                         ("local_call_peak_rss_mib", local["call_peak_rss_mib"]),
                         ("ray_driver_rss_before_mib", ray["rss_before_mib"]),
                         ("ray_driver_call_peak_rss_mib", ray["call_peak_rss_mib"]),
                         ("ray_driver_call_peak_rss_anon_mib", ray["call_peak_rss_anon_mib"]),
                         ("ray_driver_process_peak_rss_mib", ray["peak_rss_mib"]),
                         ("ray_driver_cpu_seconds", ray["driver_cpu_seconds"])):
                report(f"label.{k}", v)
            rows += [("label: local pairs/s/core", local["pairs_per_second_per_core"], "", ""),
                     ("label: Ray start-up s", ray["ray_startup_seconds"], "", ""),
                     ("label: Ray pairs/s/core", ray["pairs_per_second_per_core"], "", ""),
                     ("label: Ray / local per core", ratio, f">= {TARGET_LABEL_RATIO}", ratio >= TARGET_LABEL_RATIO),
                     ("label: Ray driver peak RSS MiB", ray["call_peak_rss_mib"], f"< {TARGET_DRIVER_GIB * 1024:.0f}",
                      ray["call_peak_rss_mib"] < TARGET_DRIVER_GIB * 1024)]
    print()
    print(f"{'measure':<34} {'value':>12}  {'target':<8} meets")
    for name, value, target, meets in rows:
        shown = "-" if value is None else f"{value:,.0f}" if isinstance(value, float) and value >= 1000 else f"{value:.3f}"
        print(f"{name:<34} {shown:>12}  {target:<8} {meets}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        report("json", args.json)

if __name__ == "__main__":
    main()
