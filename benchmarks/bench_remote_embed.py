"""Benchmark the OpenAI-compatible endpoint client (lrd.embed.remote) against a local server.

The server (tests/embedding_server.py) runs in its own process, so its JSON work does not
compete with the client's for one interpreter lock, and adds a fixed latency to every request.
`RemoteEncoder.encode` embeds `--texts` texts in batches of `--batch-size` with `--concurrency`
requests in flight; the server returns `--dim` (default 1536) float32 values a text, as base64
unless `--encoding-format float`. Ideal time: ceil(texts / batch) / concurrency * latency
(every request overlapped, nothing spent on transfer or parsing; the client's first batch,
sent alone to catch a wrong key after one request, adds one latency beyond it). Target:
10k texts, batches of 64, concurrency 8, 50 ms latency in < 3 s.

    python benchmarks/bench_remote_embed.py
    python benchmarks/bench_remote_embed.py --texts 1000 --dim 64     # smoke
    python benchmarks/bench_remote_embed.py --encoding-format float   # JSON float lists instead
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, report  # noqa: E402

sys.path.insert(0, str(REPO))
from lrd.embed.remote import RemoteEncoder, RemoteSettings  # noqa: E402

TARGET_S = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server adds to every request")
    parser.add_argument("--dim", type=int, default=1536, help="vector size the server returns (text-embedding-3-small: 1536)")
    parser.add_argument("--encoding-format", choices=["base64", "float"], default="base64")
    args = parser.parse_args()

    server = subprocess.Popen(
        [sys.executable, "-m", "tests.embedding_server", "--dim", str(args.dim), "--latency", str(args.latency)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        base_url = server.stdout.readline().strip()
        texts = [f"Item {i}: a product description of moderate length, number {i}" for i in range(args.texts)]
        settings = RemoteSettings(base_url=base_url, model="bench", api_key_env=None, batch_size=args.batch_size,
                                  concurrency=args.concurrency, encoding_format=args.encoding_format)
        with RemoteEncoder(settings) as encoder:
            start, cpu = time.perf_counter(), time.process_time()
            vectors = encoder.encode(texts, progress=False)
            seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
            requests = encoder.spent["requests"]
    finally:
        server.terminate()
        server.wait()

    ideal = math.ceil(args.texts / args.batch_size) / args.concurrency * args.latency
    report("texts", args.texts)
    report("dim", vectors.shape[1])
    report("encoding_format", args.encoding_format)
    report("requests", requests)
    report("seconds", seconds)
    report("ideal_seconds", ideal)
    report("ratio_to_ideal", seconds / ideal)
    report("client_cpu_seconds", cpu)
    report("texts_per_second", args.texts / seconds)
    report("target_seconds", TARGET_S)
    report("meets_target", seconds < TARGET_S)


if __name__ == "__main__":
    main()
