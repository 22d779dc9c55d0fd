"""The one place that defines the Parquet tables the pipeline writes.

Ids: users and items are numbered 1..n (0 is padding); relation ids are shared by predefined and
latent types, with 0 the model's virtual "any item" type.
"""

from __future__ import annotations

import pyarrow as pa

SPLITS = ("train", "dev", "test")

# One row per interaction, ordered by (timestamp, user) with ties in file order.
INTERACTIONS = pa.schema(
    [
        pa.field("user", pa.int32(), nullable=False),
        pa.field("item", pa.int32(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),  # seconds since the epoch
        pa.field("split", pa.string(), nullable=False),  # train | dev | test
    ]
)

USERS = pa.schema(
    [
        pa.field("user", pa.int32(), nullable=False),
        pa.field("raw_id", pa.string(), nullable=False),
    ]
)

# Fixed columns first; readers may append descriptive columns (string or list<string>),
# e.g. `year`, `genres`, `brand`, `category`, which text templates and attributes refer to.
ITEM_COLUMNS = pa.schema(
    [
        pa.field("item", pa.int32(), nullable=False),
        pa.field("raw_id", pa.string(), nullable=False),
        pa.field("title", pa.string()),
        pa.field("text", pa.string(), nullable=False),  # what the LLM reads
    ]
)

RELATION_KINDS = ("virtual", "item-item", "attribute", "latent")

RELATION_TYPES = pa.schema(
    [
        pa.field("id", pa.int16(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # one of RELATION_KINDS
    ]
)

# Item-item triples have a tail and no value; attribute triples a value and no tail.
RELATIONS = pa.schema(
    [
        pa.field("head", pa.int32(), nullable=False),
        pa.field("relation", pa.int16(), nullable=False),
        pa.field("tail", pa.int32()),
        pa.field("value", pa.string()),
    ]
)


def candidates_schema(n_negatives: int) -> pa.Schema:
    """Evaluation candidates: one row per dev/test interaction, the target plus fixed negatives."""
    return pa.schema(
        [
            pa.field("user", pa.int32(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("target", pa.int32(), nullable=False),
            pa.field("negatives", pa.list_(pa.int32(), n_negatives), nullable=False),
        ]
    )


# Discovered relations (standalone `discover` and joint training export the same schema).
LATENT_RELATIONS = pa.schema(
    [
        pa.field("head", pa.int32(), nullable=False),
        pa.field("tail", pa.int32(), nullable=False),
        pa.field("relation", pa.int16(), nullable=False),  # most probable latent type
        pa.field("probability", pa.float32(), nullable=False),  # q(relation | head, tail)
        pa.field("source", pa.dictionary(pa.int8(), pa.string()), nullable=False),  # cooccur | knn | both
    ]
)

# Per-user ranks of the held-out item among its candidates, for slicing results with SQL.
RANKS = pa.schema(
    [
        pa.field("model", pa.string(), nullable=False),
        pa.field("seed", pa.int32(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # dev | test | test_full (ranked among all items)
        pa.field("user", pa.int32(), nullable=False),
        pa.field("target", pa.int32(), nullable=False),
        # 1 = best. A negative scoring equal to the target counts as ranked above it, so ties
        # never help (a constant model gets the worst rank, not the best).
        pa.field("rank", pa.int32(), nullable=False),
    ]
)
