"""The processed dataset: the tables ingest writes and every later stage reads."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa

from lrd.io import atomic_path, read_json, read_parquet, write_json, write_parquet
from lrd.paths import PROCESSED_TABLES, Paths


@dataclasses.dataclass
class DatasetTables:
    interactions: pa.Table
    users: pa.Table
    items: pa.Table
    relation_types: pa.Table
    relations: pa.Table
    candidates: pa.Table
    stats: dict

    def tables(self) -> dict[str, pa.Table]:
        return {name: getattr(self, name) for name in PROCESSED_TABLES}

    @classmethod
    def load(cls, paths: Paths) -> "DatasetTables":
        stats = read_json(paths.stats, f"re-run `dvc repro -f ingest@{paths.dataset}`") if paths.stats.exists() else {}
        tables = {name: read_parquet(paths.table(name), f"ingest@{paths.dataset}") for name in PROCESSED_TABLES}
        return cls(**tables, stats=stats)

    def write(self, paths: Paths) -> None:
        """All tables at once: the folder is replaced in one rename."""
        with atomic_path(paths.processed) as tmp:
            for name, table in self.tables().items():
                write_parquet(table, tmp / f"{name}.parquet", row_group_size=1 << 20)
            write_json(self.stats, tmp / paths.stats.name)

    @property
    def n_users(self) -> int:
        return int(self.stats.get("users") or np.max(self.interactions.column("user").to_numpy()))

    @property
    def n_items(self) -> int:
        return int(np.max(self.items.column("item").to_numpy()))

    def model_relations(self, setting: tuple[str, ...] | None) -> tuple[str, ...]:
        """The predefined relation kinds the models use: the setting, or what the dataset's reader suggests."""
        return tuple(setting) if setting is not None else tuple(self.stats.get("model_relations") or ("attribute",))
