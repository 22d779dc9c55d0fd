"""A local HTTP server that speaks the OpenAI embeddings API, for the tests and the benchmark.

Each text's vector is `expected_vector(text, dim)` (as float lists, or base64 float32 when the
request asks for `encoding_format: base64`), so a client's output can be checked row by
row. Faults are queued in `server.faults` and used up one per request, in arrival order:

    "429"        Too Many Requests with `Retry-After: server.retry_after`
    "500"        Internal Server Error
    "slow"       waits `server.slow_s` before a normal answer (a client timeout)
    "malformed"  200 with a truncated JSON body
    "fewer"      200 with the last vector left out
    "noindex"    200 without the `index` fields
    "reversed"   200 with the vectors listed last first (each with its right index)

A request whose bearer token differs from `server.api_key` (when set) gets 401. Every request
is recorded in `server.requests`. Run as a script it serves until killed, printing its base URL:

    python -m tests.embedding_server --dim 256 --latency 0.05
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def expected_vector(text: str, dim: int) -> np.ndarray:
    """A vector that only this text gets; cheap, so the server's own time stays small."""
    noise = np.frombuffer(hashlib.shake_256(text.encode("utf-8")).digest(dim), dtype=np.uint8)
    return (noise.astype(np.float32) - 127.5) / 64


def count_tokens(text: str) -> int:
    return max(1, len(text.encode("utf-8")) // 4)


class EmbeddingServer:
    def __init__(self, dim: int = 8, latency: float = 0.0, api_key: str | None = None, report_usage: bool = True):
        self.dim, self.latency, self.api_key, self.report_usage = dim, latency, api_key, report_usage
        self.retry_after, self.slow_s = "0.05", 1.0
        self.faults: deque[str] = deque()
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True  # a slow handler must not hold up shutdown
        self.httpd.owner = self
        # A short poll interval: shutdown() waits up to one, once per test.
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> "EmbeddingServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def answer(self, auth: str | None, body: bytes) -> tuple[int, dict, bytes]:
        """(status, headers, body) for one request; records it and uses up the next fault."""
        with self.lock:
            fault = self.faults.popleft() if self.faults else None
            request = json.loads(body)
            self.requests.append({"auth": auth, "input": request["input"], "fault": fault})
        if self.api_key is not None and auth != f"Bearer {self.api_key}":
            return 401, {}, _json({"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
        if fault == "429":
            return 429, {"Retry-After": self.retry_after}, _json({"error": {"message": "Rate limit reached"}})
        if fault == "500":
            return 500, {}, _json({"error": {"message": "The server had an error"}})
        if fault == "slow":
            time.sleep(self.slow_s)
        texts = request["input"]
        encode = _base64 if request.get("encoding_format") == "base64" else np.ndarray.tolist
        data = [{"object": "embedding", "index": i, "embedding": encode(expected_vector(t, self.dim))} for i, t in enumerate(texts)]
        if fault == "fewer":
            data = data[:-1]
        if fault == "reversed":
            data = data[::-1]
        if fault == "noindex":
            data = [{"embedding": d["embedding"]} for d in data]
        doc = {"object": "list", "data": data, "model": request["model"]}
        if self.report_usage:
            tokens = sum(count_tokens(t) for t in texts)
            doc["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        body = _json(doc)
        return 200, {}, body[: len(body) // 2] if fault == "malformed" else body


def _base64(vector: np.ndarray) -> str:
    return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")


def _json(doc) -> bytes:
    return json.dumps(doc).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers do
    disable_nagle_algorithm = True  # else headers and body, written apart, wait out the client's delayed ACK (40 ms)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        server: EmbeddingServer = self.server.owner
        if self.path.rstrip("/") != "/v1/embeddings":
            status, headers, out = 404, {}, _json({"error": {"message": f"no route {self.path}"}})
        else:
            time.sleep(server.latency)
            status, headers, out = server.answer(self.headers.get("Authorization"), body)
        try:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", "Content-Length": str(len(out)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds added to every request")
    args = parser.parse_args()
    with EmbeddingServer(dim=args.dim, latency=args.latency) as server:
        print(server.base_url, flush=True)
        server.thread.join()


if __name__ == "__main__":
    main()
