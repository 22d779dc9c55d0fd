"""`datasets` in params.yaml: each dataset's name, format and source (what download reads, and
where every later stage finds the dataset's files)."""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Any

from lrd.config.base import build
from lrd.errors import ConfigError
from lrd.paths import Paths

SourceKind = typing.Literal["pypi-wheel", "url", "files", "path"]
DatasetFormat = typing.Literal["recbole", "movielens", "amazon2014", "amazon2018", "rechorus"]

@dataclasses.dataclass(frozen=True)
class SourceConfig:
    kind: SourceKind
    package: str | None = None  # pypi-wheel: requirement, e.g. recbole==1.2.1
    url: str | None = None  # url: the file (zip, gz or plain); files: the folder the files are in
    path: str | None = None  # path: a local file or folder
    sha256: str | None = None  # required for pypi-wheel and url; optional for path
    member: str | None = None  # folder inside an archive to extract (default: everything)
    files: dict[str, str] | None = None  # files: file name -> sha256, each fetched from `url` + name
    # files: a local folder holding the same files (checked against the same sums), used
    # before the network; the environment variable LRD_DATASET_MIRROR names one too.
    mirror: str | None = None

    def validate(self) -> None:
        need = {"pypi-wheel": "package", "url": "url", "files": "files", "path": "path"}[self.kind]
        if getattr(self, need) is None:
            raise ConfigError(f"params.yaml: `source.{need}` of the dataset is required for kind {self.kind!r}")
        if self.kind == "files":
            if not self.url:
                raise ConfigError("params.yaml: `source.url` of the dataset is required for kind 'files' (the folder the files are in)")
            for name, digest in self.files.items():
                if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(name)):
                    raise ConfigError(f"params.yaml: `source.files` entry {name!r} must be a plain file name")
                if not re.fullmatch(r"[0-9a-fA-F]{64}", str(digest or "")):
                    raise ConfigError(
                        f"params.yaml: `source.files.{name}` must be the file's sha256 (64 hex digits), got {digest!r}"
                    )
            return
        if self.kind != "path" and not self.sha256:
            raise ConfigError(
                f"params.yaml: `source.sha256` of the dataset is required for kind {self.kind!r} "
                "(run `sha256sum` on a trusted copy of the file)"
            )


@dataclasses.dataclass(frozen=True)
class DatasetConfig:
    """One entry of params.yaml `datasets`: its name is the key, a folder name under data/."""

    name: str
    format: DatasetFormat
    source: SourceConfig
    ingest: dict[str, Any] | None = None  # this dataset's `ingest` settings over the common ones

    def validate(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name or ""):
            raise ConfigError(f"params.yaml: dataset name {self.name!r} must be a plain folder name (letters, digits, . _ -)")

    @property
    def paths(self) -> Paths:
        return Paths(self.name)




def dataset_names(params: dict) -> list[str]:
    datasets = params.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError("params.yaml: `datasets` must map at least one dataset name to its format and source")
    names = [str(k) for k in datasets]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"params.yaml: dataset {twice[0]!r} is named twice in `datasets` (as a number and as text); keep one")
    return names


def dataset_config(params: dict, name: str | None = None) -> DatasetConfig:
    """The dataset `name` of params.yaml `datasets` (without a name: the first one)."""
    names = dataset_names(params)
    name = names[0] if name is None else name
    if name not in params["datasets"]:
        raise ConfigError(f"unknown dataset {name!r}; params.yaml `datasets` defines: {', '.join(names)}")
    entry = params["datasets"][name]
    if not isinstance(entry, dict):
        raise ConfigError(f"params.yaml: `datasets.{name}` must be a mapping with `format` and `source`, got {entry!r}")
    return build(DatasetConfig, {"name": name, **entry}, f"datasets.{name}")
