"""Readers: one per raw format, each returning a RawDataset (see base.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

from lrd.config.ingest import IngestConfig
from lrd.data.readers.base import RawDataset
from lrd.errors import DataError

# format -> (module, function); imported on use so a run loads only its own reader.
READERS = {
    "recbole": ("lrd.data.readers.recbole", "read_recbole"),
    "movielens": ("lrd.data.readers.movielens", "read_movielens"),
    "amazon2014": ("lrd.data.readers.amazon", "read_amazon2014"),
    "amazon2018": ("lrd.data.readers.amazon", "read_amazon2018"),
    "rechorus": ("lrd.data.readers.rechorus", "read_rechorus"),
}


def read_dataset(fmt: str, folder: Path, cfg: IngestConfig) -> RawDataset:
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder} does not exist: run `dvc repro download` first")
    module, function = READERS[fmt]
    return getattr(importlib.import_module(module), function)(folder, cfg)
