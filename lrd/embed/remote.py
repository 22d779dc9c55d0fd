"""Item vectors from an OpenAI-compatible embeddings endpoint (`embed.backend: openai`).

OpenAI, vLLM, TEI and Ollama all answer POST {base_url}/embeddings with
{"model": ..., "input": [texts]} -> {"data": [{"index": i, "embedding": [...]}], "usage": {...}}.

Interface (the same shape as the local encoders in lrd.embed.encoders):

    encoder = RemoteEncoder(RemoteSettings(base_url=..., model=...))    # or RemoteSettings.from_config(cfg)
    vectors = encoder.encode(texts, progress=True, on_chunk=None)       # float32, len(texts) x dim
    encoder.dim                                                         # None until the first answer
    encoder.spent                                                       # {"requests", "tokens", "tokens_estimated"}
    identity(settings) -> dict                                          # for the vector cache; never the key

`on_chunk(indices, vectors)` is called in the calling thread as each batch arrives, so the
caller can store partial results: an interrupted or over-budget run keeps what it paid for.

Batches go out `concurrency` at a time on threads sharing one httpx client (one connection
each), after a first batch sent alone: a wrong key or model fails after one request, not N.
Vectors are asked for as base64 float32 (`encoding_format`), as the official OpenAI clients
do: at 1536 dimensions, parsing JSON float lists costs more than the rest of a request.
Retried with exponential backoff and jitter, or after the server's Retry-After: 408, 429, 5xx,
timeouts and connection errors. Failed at once: 401/403 (the key), other 4xx, and a body
that is not a well-formed answer for the batch sent.

The budget (`max_requests`, `max_tokens`) is checked before each request against what was
spent plus what is in flight. Every attempt counts as a request, so `max_requests` is never
passed. Tokens are the server's `usage` where it reports one; a batch not yet answered, or
answered without usage, counts as an estimate from its UTF-8 length (calibrated, with a 10%
margin, on the usage the server did report), so `max_tokens` holds as far as that estimate does.
"""

from __future__ import annotations

import base64
import dataclasses
import email.utils
import json
import logging
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Literal

import httpx
import numpy as np

from lrd.errors import ConfigError, LRDError, ModelError

log = logging.getLogger(__name__)

RETRY_STATUS = {408, 429} | set(range(500, 600))
FIRST_GUESS_TOKENS_PER_BYTE = 1 / 3  # before any usage is reported; English is nearer 1/4


class BudgetError(LRDError):
    """The endpoint budget (`embed.max_requests` / `embed.max_tokens`) would be passed."""


@dataclasses.dataclass(frozen=True)
class RemoteSettings:
    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"  # the NAME of the variable; null: send no key
    instruction: str = ""  # prepended to every text
    normalize: bool = True
    batch_size: int = 64
    concurrency: int = 8
    max_retries: int = 6
    timeout_s: float = 60.0
    backoff_s: float = 1.0  # first retry waits about this long, doubling each time
    max_backoff_s: float = 60.0
    max_requests: int | None = None
    max_tokens: int | None = None
    # base64: float32 bytes, ~5x cheaper to parse than JSON floats (the official OpenAI clients'
    # default); a server that ignores it answers with float lists, which are read as well.
    encoding_format: Literal["base64", "float"] = "base64"

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"params.yaml: `embed.base_url` is {self.base_url!r}; the openai backend needs the endpoint's URL, "
                "e.g. https://api.openai.com/v1 or http://localhost:8000/v1"
            )
        for name in ("batch_size", "concurrency", "max_requests", "max_tokens"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"params.yaml: `embed.{name}` must be >= 1, got {value}")
        if self.encoding_format not in ("base64", "float"):
            raise ConfigError(f"params.yaml: `embed.encoding_format` must be base64 or float, got {self.encoding_format!r}")
        if self.max_retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0 or self.timeout_s <= 0:
            raise ConfigError("params.yaml: `embed.max_retries`, `embed.backoff_s` and `embed.max_backoff_s` must be >= 0, `embed.timeout_s` > 0")

    @classmethod
    def from_config(cls, cfg) -> "RemoteSettings":
        """From any object with attributes of these names (EmbedConfig); absent ones keep their defaults."""
        return cls(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cls) if hasattr(cfg, f.name)})

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/embeddings"


def identity(settings: RemoteSettings) -> dict:
    """Everything that changes a vector for a given text (the key and the client settings do not)."""
    return {
        "backend": "openai",
        "base_url": settings.base_url.rstrip("/"),
        "model": settings.model,
        "instruction": settings.instruction,
        "normalize": settings.normalize,
    }


class _Stopped(Exception):
    """A worker noticed that another batch failed and gave up its own."""


class _Budget:
    """Requests and tokens spent; `reserve` before each request refuses one that could pass a limit."""

    def __init__(self, max_requests: int | None, max_tokens: int | None):
        self.max_requests, self.max_tokens = max_requests, max_tokens
        self.lock = threading.Lock()
        self.requests = self.tokens = self.estimated = self.in_flight = 0
        self.reported_tokens = self.reported_bytes = 0

    def estimate(self, nbytes: int, ntexts: int) -> int:
        with self.lock:
            rate = self.reported_tokens / self.reported_bytes * 1.1 if self.reported_bytes else FIRST_GUESS_TOKENS_PER_BYTE
        return math.ceil(nbytes * rate) + ntexts

    def reserve(self, tokens: int) -> None:
        with self.lock:
            if self.max_requests is not None and self.requests + 1 > self.max_requests:
                raise BudgetError(f"`embed.max_requests` ({self.max_requests}) reached; {self._spent()}")
            if self.max_tokens is not None and self.tokens + self.in_flight + tokens > self.max_tokens:
                raise BudgetError(f"the next batch (~{tokens} tokens) would pass `embed.max_tokens` ({self.max_tokens}); {self._spent()}")
            self.requests += 1
            self.in_flight += tokens

    def settle(self, reserved: int, reported: int | None, nbytes: int) -> None:
        """A batch came back: count the server's usage, or the estimate where it gave none."""
        with self.lock:
            self.in_flight -= reserved
            if reported is None:
                self.tokens += reserved
                self.estimated += reserved
            else:
                self.tokens += reported
                self.reported_tokens += reported
                self.reported_bytes += nbytes

    def release(self, reserved: int) -> None:
        """A failed attempt: it counts as a request, its tokens are not billed."""
        with self.lock:
            self.in_flight -= reserved

    def _spent(self) -> str:
        return f"spent {self.requests} requests and {self.tokens} tokens ({self.estimated} of them estimated)"


class RemoteEncoder:
    def __init__(self, settings: RemoteSettings):
        self.s = settings
        self.dim: int | None = None
        self._budget = _Budget(settings.max_requests, settings.max_tokens)
        headers = {"Authorization": f"Bearer {_api_key(settings.api_key_env)}"} if settings.api_key_env else {}
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s),
            limits=httpx.Limits(max_connections=settings.concurrency, max_keepalive_connections=settings.concurrency),
        )

    @property
    def spent(self) -> dict:
        b = self._budget
        return {"requests": b.requests, "tokens": b.tokens, "tokens_estimated": b.estimated}

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "RemoteEncoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def encode(self, texts: list[str], progress: bool = True, on_chunk: Callable[[np.ndarray, np.ndarray], None] | None = None) -> np.ndarray:
        """float32 vectors, one row per text in input order (unit length when `normalize`)."""
        from tqdm import tqdm

        texts = [self.s.instruction + t for t in texts]
        spans = [(lo, min(lo + self.s.batch_size, len(texts))) for lo in range(0, len(texts), self.s.batch_size)]
        if not spans:
            return np.empty((0, self.dim or 0), np.float32)
        out: np.ndarray | None = None
        done = 0

        def deliver(lo: int, hi: int, vectors: np.ndarray) -> None:
            nonlocal out, done
            if self.dim is None:
                self.dim = vectors.shape[1]
            if vectors.shape[1] != self.dim:
                raise ModelError(f"{self.s.url}: {self.s.model} returned {vectors.shape[1]}-d vectors after {self.dim}-d ones")
            if self.s.normalize:
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.empty((len(texts), self.dim), np.float32)
            out[lo:hi] = vectors
            if on_chunk is not None:
                on_chunk(np.arange(lo, hi), vectors)
            done += hi - lo
            bar.update(hi - lo)

        stop = threading.Event()  # set on the first failure: the other batches are not sent
        with tqdm(total=len(texts), desc="embedding", unit="text", disable=None if progress else True, leave=False) as bar:
            try:
                lo, hi = spans[0]
                deliver(lo, hi, self._request(texts[lo:hi], stop))
                self._fan_out(texts, spans[1:], deliver, stop)
            except BudgetError as exc:
                raise BudgetError(
                    f"{self.s.url}: stopped before passing the budget: {exc}. {done} of {len(texts)} texts were embedded "
                    "before stopping; raise the limit and re-run to go on from there"
                ) from None
        return out

    def _fan_out(self, texts: list[str], spans: list[tuple[int, int]], deliver, stop: threading.Event) -> None:
        """Keep `concurrency` batches in flight; on the first failure stop sending, keep what arrives, raise."""

        def run(batch: list[str]) -> np.ndarray:
            try:
                return self._request(batch, stop)
            except Exception:
                stop.set()  # here, not in the loop below: this thread would otherwise send its next batch first
                raise

        error: Exception | None = None
        pool = ThreadPoolExecutor(self.s.concurrency, thread_name_prefix="embed")
        try:
            futures = {pool.submit(run, texts[lo:hi]): (lo, hi) for lo, hi in spans}
            for future in as_completed(futures):
                try:
                    vectors = future.result()
                except _Stopped:
                    continue
                except Exception as exc:  # raised below, once the batches in flight are in
                    error = error or exc
                    continue
                deliver(*futures[future], vectors)  # even after a failure: those tokens were paid for
        finally:  # also on Ctrl-C or an on_chunk error: send nothing more, and do not wait for answers
            stop.set()
            pool.shutdown(wait=False, cancel_futures=True)
        if error is not None:
            raise error

    def _request(self, texts: list[str], stop: threading.Event) -> np.ndarray:
        """POST one batch, retrying what may pass; its vectors in input order."""
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        tokens = self._budget.estimate(nbytes, len(texts))
        attempts = self.s.max_retries + 1
        for attempt in range(attempts):
            if stop.is_set():
                raise _Stopped
            self._budget.reserve(tokens)
            wait = None
            try:
                response = self._client.post(self.s.url, json={"model": self.s.model, "input": texts, "encoding_format": self.s.encoding_format})
            except httpx.TimeoutException:
                problem = f"no answer within {self.s.timeout_s:g} s (`embed.timeout_s`)"
            except httpx.TransportError as exc:
                problem = f"cannot reach the server ({type(exc).__name__}: {exc})"
            else:
                if response.status_code == 200:
                    try:
                        vectors, reported = _parse(response.content, len(texts), self.s.url)
                    except ModelError:
                        self._budget.settle(tokens, None, nbytes)  # it answered, so it may have billed
                        raise
                    self._budget.settle(tokens, reported, nbytes)
                    return vectors
                problem = f"HTTP {response.status_code}: {_error_text(response)}"
                if response.status_code not in RETRY_STATUS:
                    self._budget.release(tokens)
                    raise ModelError(_refusal(self.s, response.status_code, problem))
                wait = _retry_after(response)
            self._budget.release(tokens)
            if attempt + 1 == attempts:
                break
            if wait is None:  # exponential backoff with jitter, so the workers do not retry in step
                wait = min(self.s.max_backoff_s, self.s.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
            log.warning("%s: %s; retry %d of %d in %.2f s", self.s.url, problem, attempt + 1, self.s.max_retries, wait)
            if stop.wait(wait):
                raise _Stopped
        raise ModelError(
            f"{self.s.url}: {problem}, on all {attempts} attempts; check that the server is up and the URL is right, "
            "or raise `embed.max_retries` / `embed.timeout_s` (or lower `embed.concurrency`) for a busy server"
        )


def _api_key(env: str) -> str:
    key = os.environ.get(env, "")
    if not key:
        raise ConfigError(
            f"the environment variable {env} (named by `embed.api_key_env`) is not set: export the API key in it, "
            "or set `embed.api_key_env: null` for a server that needs no key"
        )
    return key


def _refusal(s: RemoteSettings, status: int, problem: str) -> str:
    if status in (401, 403) and s.api_key_env is None:
        return (
            f"{s.url}: the server wants an API key ({problem}); nothing was retried. Set `embed.api_key_env` to the "
            "name of the environment variable that holds it"
        )
    if status in (401, 403):
        return (
            f"{s.url}: the server refused the API key ({problem}); nothing was retried. Put a valid key in the "
            f"environment variable {s.api_key_env} (named by `embed.api_key_env`) and re-run"
        )
    return (
        f"{s.url}: {problem}; check `embed.model` ({s.model!r}) and `embed.base_url`, and for a text longer than "
        "the model takes, `embed.text_template`"
    )


def _error_text(response: httpx.Response) -> str:
    """The server's own error message, short (OpenAI: {"error": {"message": ...}})."""
    try:
        err = response.json().get("error")
        text = err.get("message") if isinstance(err, dict) else err
    except (ValueError, AttributeError):
        text = None
    return str(text or response.text or response.reason_phrase)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _parse(body: bytes, n: int, url: str) -> tuple[np.ndarray, int | None]:
    """(vectors in input order, tokens the server reports or None), or ModelError for a bad answer."""
    try:
        doc = json.loads(body)
        data = doc["data"]
        index = [d["index"] for d in data]
        embeddings = [_floats(d["embedding"]) for d in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{url}: malformed answer ({type(exc).__name__}: {exc}); the body starts {body[:200]!r}") from None
    if len(data) != n:
        raise ModelError(f"{url}: the server returned {len(data)} vectors for {n} inputs; check the server (or lower `embed.batch_size`)")
    if sorted(i for i in index if isinstance(i, int)) != list(range(n)):
        raise ModelError(f"{url}: the answer's indexes {index[:10]} are not 0..{n - 1} once each; check the server")
    if len({len(e) for e in embeddings}) != 1 or len(embeddings[0]) == 0:
        raise ModelError(f"{url}: the embeddings differ in length or are empty; check the server")
    vectors = np.stack(embeddings)
    out = np.empty_like(vectors)
    out[index] = vectors
    usage = doc.get("usage") if isinstance(doc, dict) else None
    tokens = usage.get("prompt_tokens", usage.get("total_tokens")) if isinstance(usage, dict) else None
    return out, tokens if isinstance(tokens, int) else None


def _floats(embedding) -> np.ndarray:
    """One embedding as float32: a list of numbers, or base64 of little-endian float32 bytes."""
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        if len(raw) % 4:
            raise ValueError(f"base64 embedding of {len(raw)} bytes is not float32 data")
        return np.frombuffer(raw, dtype="<f4")  # a read-only view; the batch's np.stack copies it
    if not isinstance(embedding, list):
        raise TypeError(f"an embedding is a {type(embedding).__name__}, not a list or base64 string")
    vector = np.asarray(embedding, dtype=np.float32)
    if vector.ndim != 1:
        raise ValueError(f"an embedding has shape {vector.shape}, not a flat list")
    return vector
