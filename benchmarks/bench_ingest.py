"""Benchmark the ingest stage: raw RecBole files -> canonical Parquet tables.

(a) ML-100K: when data/raw/ml-100k exists (only read, never written), time the same calls as
    stages/ingest.py (`read_dataset` + `ingest` with IngestConfig.from_params(params.yaml)) plus
    writing the Parquet tables and stats.json to a temporary folder.
    Target: < 10 s wall, excluding the download.
(b) Synthetic: write RecBole atomic files (`x.inter`, `x.item`) with popularity-skewed (Zipf-like)
    items and users and random timestamps, then ingest them in a SUBPROCESS so that the peak
    RSS of the ingest alone is measured (the worker's own RUSAGE_SELF; RUSAGE_CHILDREN is also
    printed, the max over all workers). The generator runs in its own subprocess as well.
    IngestConfig(seed=0, min_core=5, n_negatives=99, text_template="{title}", attributes={}),
    no knowledge graph. Generation time is reported separately from ingest time.
    Target (10M interactions, 1M users, 200k items): ingest within 5 minutes, under 6 GiB peak.

Everything is written under a temporary folder that is removed at the end.

    python benchmarks/bench_ingest.py                        # full size
    python benchmarks/bench_ingest.py --interactions 200_000 --users 20_000 --items 5_000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, current_rss_mib, emit_result, peak_rss_mib, report, run_worker  # noqa: E402

TARGET_ML100K_S = 10.0
TARGET_SYNTH_S = 300.0
TARGET_SYNTH_GIB = 6.0

INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
ITEM_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
WORDS = ["Night", "Day", "Love", "War", "Return", "Story", "City", "Dark", "Last", "First", "Man", "Woman", "Secret",
         "River", "Star", "King", "Queen", "Ghost", "Dream", "Road", "House", "Island", "Winter", "Summer", "Fire",
         "Ice", "Blood", "Gold", "Silver", "Shadow", "Light", "Song", "Heart", "Edge", "Storm", "Garden"]


# ------------------------------------------------------------------------------------------
# synthetic data


def _skewed(rng, n_draws: int, n_values: int, exponent: float, perm):
    """n_draws ids in 1..n_values with P(rank r) ~ r^-exponent, ranks scattered over the ids by perm."""
    import numpy as np

    cdf = np.cumsum(np.arange(1, n_values + 1, dtype=np.float64) ** -exponent)
    rank = np.searchsorted(cdf, rng.random(n_draws) * cdf[-1], side="right")
    return perm[np.minimum(rank, n_values - 1)]


def write_synthetic(folder: Path, n_inter: int, n_users: int, n_items: int, item_skew: float, user_skew: float,
                    seed: int = 0, chunk: int = 1_000_000) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    opts = pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    user_perm = rng.permutation(n_users).astype(np.int64) + 1
    item_perm = rng.permutation(n_items).astype(np.int64) + 1
    schema = pa.schema([("u", pa.int64()), ("i", pa.int64()), ("r", pa.int8()), ("t", pa.int64())])
    with open(folder / "x.inter", "wb") as f:
        f.write(INTER_HEADER.encode())
        with pcsv.CSVWriter(f, schema, write_options=opts) as writer:
            for lo in range(0, n_inter, chunk):
                m = min(chunk, n_inter - lo)
                writer.write_table(pa.table({
                    "u": _skewed(rng, m, n_users, user_skew, user_perm),
                    "i": _skewed(rng, m, n_items, item_skew, item_perm),
                    "r": rng.integers(1, 6, m, dtype=np.int8),
                    "t": rng.integers(946_684_800, 1_609_459_200, m, dtype=np.int64),  # 2000 .. 2021
                }, schema=schema))

    words = pa.array(WORDS)
    genres = pa.array(GENRES + [""])  # "" : a single-genre item (the reader trims the trailing space)
    ids = pa.array(np.arange(1, n_items + 1, dtype=np.int64)).cast(pa.string())
    w = lambda: words.take(pa.array(rng.integers(0, len(WORDS), n_items)))  # noqa: E731
    items = pa.table({
        "item_id": ids,
        "movie_title": pc.binary_join_element_wise(w(), w(), ids, " "),
        "release_year": pa.array(rng.integers(1920, 2021, n_items)).cast(pa.string()),
        "class": pc.binary_join_element_wise(
            genres.take(pa.array(rng.integers(0, len(GENRES), n_items))),
            genres.take(pa.array(rng.integers(0, len(GENRES) + 1, n_items))), " "),
    })
    with open(folder / "x.item", "wb") as f:
        f.write(ITEM_HEADER.encode())
        pcsv.write_csv(items, f, write_options=opts)


# ------------------------------------------------------------------------------------------
# worker: one ingest in a fresh process


def worker(folder: str, out: str, fmt: str, cfg_spec: str) -> None:
    t_import = time.perf_counter()
    from lrd.config.base import build, load_params
    from lrd.config.ingest import IngestConfig
    from lrd.data.ingest import ingest
    from lrd.data.readers import read_dataset
    from lrd.io import write_json, write_parquet

    import_s = time.perf_counter() - t_import
    rss_start = current_rss_mib()
    if cfg_spec == "params":
        cfg = IngestConfig.from_params(load_params(REPO / "params.yaml"))
    else:
        cfg = build(IngestConfig, json.loads(cfg_spec), "ingest")
    t0 = time.perf_counter()
    raw = read_dataset(fmt, Path(folder), cfg)
    t1 = time.perf_counter()
    result = ingest(raw, cfg)
    t2 = time.perf_counter()
    out_dir = Path(out)
    for name, table in result.tables().items():
        write_parquet(table, out_dir / f"{name}.parquet", row_group_size=1 << 20)
    write_json(result.stats, out_dir / "stats.json")
    t3 = time.perf_counter()
    s = result.stats
    emit_result({
        "import_s": import_s, "read_s": t1 - t0, "ingest_s": t2 - t1, "write_s": t3 - t2, "total_s": t3 - t0,
        "rss_after_imports_mib": rss_start,
        "raw_interactions": raw.interactions.num_rows,
        "users": s["users"], "items": s["items"], "interactions": s["interactions"],
        "candidates": result.candidates.num_rows, "relation_types": s["relation_types"],
        "triples": sum(s["relations"].values()),
        "output_bytes": sum(p.stat().st_size for p in out_dir.iterdir()),
    })


# ------------------------------------------------------------------------------------------


def _print_worker(prefix: str, r: dict, wall: float) -> None:
    report(f"{prefix}.read_seconds", r["read_s"])
    report(f"{prefix}.ingest_seconds", r["ingest_s"])
    report(f"{prefix}.write_parquet_seconds", r["write_s"])
    report(f"{prefix}.read_ingest_write_seconds", r["total_s"])
    report(f"{prefix}.import_seconds", r["import_s"])
    report(f"{prefix}.subprocess_wall_seconds", wall)
    for k in ("raw_interactions", "interactions", "users", "items", "candidates", "relation_types", "triples", "output_bytes"):
        report(f"{prefix}.{k}", r[k])
    report(f"{prefix}.interactions_per_second", r["raw_interactions"] / r["total_s"])
    report(f"{prefix}.rss_after_imports_mib", r["rss_after_imports_mib"])
    report(f"{prefix}.peak_rss_mib", r["peak_rss_mib"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--interactions", type=int, default=10_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=200_000)
    ap.add_argument("--item-skew", type=float, default=0.8, help="Zipf-like exponent of item popularity")
    ap.add_argument("--user-skew", type=float, default=0.3, help="Zipf-like exponent of user activity")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-ml100k", action="store_true")
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        if args.worker[0] == "generate":
            t0 = time.perf_counter()
            write_synthetic(Path(args.worker[1]), args.interactions, args.users, args.items, args.item_skew,
                            args.user_skew, args.seed)
            emit_result({"seconds": time.perf_counter() - t0})
        else:
            worker(*args.worker[1:])
        return

    with tempfile.TemporaryDirectory(prefix="bench_ingest_") as tmp:
        tmp = Path(tmp)
        # (a) ML-100K, read-only from data/raw
        raw_dir = REPO / "data/raw/ml-100k"
        if args.skip_ml100k:
            pass
        elif not raw_dir.exists():
            report("ml100k", "skipped (data/raw/ml-100k absent)")
        else:
            (tmp / "ml100k_out").mkdir()
            r, wall = run_worker(__file__, ["ingest", str(raw_dir), str(tmp / "ml100k_out"), "recbole", "params"])
            _print_worker("ml100k", r, wall)
            report("ml100k.target_seconds", TARGET_ML100K_S)
            report("ml100k.meets_target", r["total_s"] < TARGET_ML100K_S)

        # (b) synthetic at scale
        if not args.skip_synthetic:
            raw = tmp / "synthetic"
            raw.mkdir()
            # Generated in its own process too: a child's peak RSS starts from its parent's
            # (Linux carries the high-water mark across fork/vfork + exec), so the parent stays small.
            gen = ["--interactions", str(args.interactions), "--users", str(args.users), "--items", str(args.items),
                   "--item-skew", str(args.item_skew), "--user-skew", str(args.user_skew), "--seed", str(args.seed)]
            g, gen_wall = run_worker(__file__, ["generate", str(raw)], extra=gen)
            report("synthetic.generate_seconds", g["seconds"])
            report("synthetic.generate_subprocess_wall_seconds", gen_wall)
            report("synthetic.generator_peak_rss_mib", g["peak_rss_mib"])
            report("synthetic.inter_file_bytes", (raw / "x.inter").stat().st_size)
            report("synthetic.item_file_bytes", (raw / "x.item").stat().st_size)
            cfg = {"seed": 0, "min_core": 5, "n_negatives": 99, "text_template": "{title}", "attributes": {}}
            (tmp / "synthetic_out").mkdir()
            r, wall = run_worker(__file__, ["ingest", str(raw), str(tmp / "synthetic_out"), "recbole", json.dumps(cfg)])
            _print_worker("synthetic", r, wall)
            report("synthetic.children_peak_rss_mib_max_over_all_workers", peak_rss_mib(children=True))
            report("launcher_peak_rss_mib", peak_rss_mib())
            report("synthetic.target_seconds", TARGET_SYNTH_S)
            report("synthetic.target_peak_gib", TARGET_SYNTH_GIB)
            report("synthetic.meets_target",
                   r["total_s"] < TARGET_SYNTH_S and r["peak_rss_mib"] < TARGET_SYNTH_GIB * 1024)


if __name__ == "__main__":
    main()
