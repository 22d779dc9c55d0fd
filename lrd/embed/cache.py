"""Incremental vector cache: one folder per encoder identity, vectors keyed by text hash.

Re-running with the same model and texts encodes nothing; new or edited item texts are the
only ones encoded. The cache lives in data/embeddings/.cache/, outside DVC's outputs, so it
survives switching models back and forth.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from pathlib import Path

import numpy as np

from lrd.io import atomic_path
from lrd.keys import KeySet

log = logging.getLogger(__name__)

KEY_BYTES = 16


def text_keys(texts: list[str]) -> np.ndarray:
    """One 16-byte key per text (as a numpy void array, so it sorts and compares fast)."""
    raw = b"".join(hashlib.sha256(t.encode("utf-8")).digest()[:KEY_BYTES] for t in texts)
    return np.frombuffer(raw, dtype=f"V{KEY_BYTES}").copy()


class VectorCache:
    def __init__(self, root: Path, ident: dict, ident_hash: str):
        self.dir = Path(root) / ident_hash
        self.ident = ident

    def _parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.keys.npy"))

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """All cached (keys, vectors); empty arrays when there is no usable cache."""
        keys, vecs = [], []
        for part in self._parts():
            try:
                k = np.load(part)
                v = np.load(part.with_name(part.name.replace(".keys.npy", ".vectors.npy")))
            except (OSError, ValueError):
                log.warning("ignoring unreadable cache part %s", part)
                continue
            if len(k) == len(v) and (not vecs or v.shape[1] == vecs[0].shape[1]):
                keys.append(k)
                vecs.append(v)
        if not keys:
            return np.empty(0, dtype=f"V{KEY_BYTES}"), np.empty((0, 0), np.float32)
        return np.concatenate(keys), np.concatenate(vecs)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(found mask, vectors for the found keys in order) for the given keys."""
        cached_keys, cached_vecs = self.load()
        if len(cached_keys) == 0:
            return np.zeros(len(keys), dtype=bool), None
        rows = KeySet(cached_keys).find(keys)
        found = rows >= 0
        return found, cached_vecs[rows[found]]

    def check_dim(self, dim: int) -> None:
        """A model whose output size differs from the cached vectors invalidates the cache."""
        _, vecs = self.load()
        if vecs.size and vecs.shape[1] != dim:
            log.warning("cached vectors have dimension %d but the model gives %d: rebuilding the cache", vecs.shape[1], dim)
            shutil.rmtree(self.dir)

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if len(keys) == 0:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "identity.json").write_text(json.dumps(self.ident, indent=2) + "\n")
        name = f"part-{uuid.uuid4().hex[:12]}"
        with atomic_path(self.dir / f"{name}.vectors.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, vectors.astype(np.float32))
        with atomic_path(self.dir / f"{name}.keys.npy") as tmp:  # written last: marks the part complete
            with open(tmp, "wb") as f:
                np.save(f, keys)
