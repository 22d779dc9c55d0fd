"""`ingest` in params.yaml (with a dataset's own `ingest:` over it): the protocol and the item text."""

from __future__ import annotations

import dataclasses
import re
import typing

from lrd.config.base import _section, param
from lrd.config.datasets import DatasetConfig
from lrd.errors import ConfigError

# What ingest checks in stored candidates (lrd.data.ingest.CANDIDATE_ISSUES).
CandidateIssue = typing.Literal["repeated_negatives", "target_in_negatives", "interacted_negatives", "several_rows_per_user"]

@dataclasses.dataclass(frozen=True)
class AttributeConfig:
    # Numeric columns (e.g. release year) are cut into buckets at these edges; values at or
    # beyond the last edge get a bucket each (the reference's yearly buckets from 1990 on).
    bucket_edges: tuple[float, ...] | None = param(None, ge=-1e15, le=1e15)

    def validate(self) -> None:
        edges = self.bucket_edges or ()
        if any(b <= a for a, b in zip(edges, edges[1:])):
            raise ConfigError(f"params.yaml: `bucket_edges` {list(edges)} must be strictly increasing")


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    # Every format-specific setting is null by default: the reader's default for its format
    # (README, "Other datasets"); a value in params.yaml overrides it.
    seed: int = param(2019, ge=0, lt=2**31)
    min_core: int = param(5, ge=0)
    # Negatives per dev/test row; null: the count a pre-split dataset stores, else 99 (sampled).
    n_negatives: int | None = param(None, ge=1, le=100_000)
    text_template: str | None = None  # the item description (lrd.data.text); null: the format's
    text_fallback: typing.Literal["title", "error"] = "title"  # what an item with empty text reads
    # Item columns that become attribute relations (null: the reader's defaults). A list
    # column gives one binary relation per value ("genres=Comedy"), a scalar column one relation
    # whose values are entities.
    attributes: dict[str, AttributeConfig] | None = None
    # Knowledge-graph relations (RecBole .kg) to keep, mapped to our names (null: the Freebase
    # film relations the files have; {}: none). A relation whose tails are items gives
    # item-item triples; any other gives "shares_<name>" pairs between items with the same tail.
    kg_relations: dict[str, str] | None = None
    max_items_per_value: int = param(50, ge=2)
    # also_bought/also_viewed lists span all time and can point at future purchases; keep
    # them (comparable with published numbers) or drop them to rule out that leak.
    item_links: bool = True
    # Stored candidates (ReChorus neg_items) with these issues are kept and counted in
    # stats.json; any other issue found is an error. The reference's Amazon files repeat
    # negatives in most rows, hence the default.
    accept_candidates: tuple[CandidateIssue, ...] = ("repeated_negatives",)

    def validate(self) -> None:
        if self.text_template is not None and not re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", self.text_template):
            raise ConfigError(f"params.yaml: `ingest.text_template` {self.text_template!r} must use at least one {{column}}, e.g. \"{{title}}\"")
        for where, names in (("ingest.attributes", self.attributes or {}), ("ingest.kg_relations", self.kg_relations or {})):
            blank = [k for k in names if not str(k).strip()]
            if blank:
                raise ConfigError(f"params.yaml: `{where}` has an empty name; use the column or relation name")
        ours = [v for v in (self.kg_relations or {}).values() if not re.fullmatch(r"[A-Za-z0-9_.-]+", v)]
        if ours:
            raise ConfigError(f"params.yaml: `ingest.kg_relations` maps to {ours[0]!r}; use a plain name (letters, digits, _ . -)")

    @classmethod
    def from_params(cls, params: dict, dataset: "DatasetConfig | None" = None) -> "IngestConfig":
        return _section(cls, params, "ingest", extra=dataset.ingest if dataset else None)
