"""The relations readout (coherence over chance, known relations) and discover's candidate and
training-pair choices, on small tables generated here."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from lrd import schemas
from lrd.discover.coherence import ItemAttributes, random_pairs, wilson
from lrd.discover.known import known_file, known_recall, load_known
from lrd.discover.pairs import cooccur_counts, cooccur_keys, cooccur_pmi, exact_knn_keys, strong_cooccur
from lrd.discover.readout import consecutive_pairs, item_titles, relation_readout
from lrd.discover.report import readout_chart, readout_markdown

N_ITEMS = 300
GENRES = ["Action", "Comedy", "Drama", "Horror", "Western"]


def _catalog(seed: int = 0):
    """300 items, one genre each (as "genres=<g>" types) and one of 10 year buckets."""
    rng = np.random.default_rng(seed)
    genre = rng.integers(0, len(GENRES), N_ITEMS + 1)
    year = rng.integers(0, 10, N_ITEMS + 1)
    names = ["any"] + [f"genres={g}" for g in GENRES] + ["year"]
    types = pa.table({"id": pa.array(range(len(names)), pa.int16()), "name": names, "kind": ["virtual"] + ["attribute"] * (len(names) - 1)},
                     schema=schemas.RELATION_TYPES)
    items = np.arange(1, N_ITEMS + 1)
    rel = pa.table({"head": pa.array(np.r_[items, items], pa.int32()),
                    "relation": pa.array(np.r_[1 + genre[items], np.full(N_ITEMS, len(names) - 1)], pa.int16()),
                    "tail": pa.array([None] * (2 * N_ITEMS), pa.int32()),
                    "value": [GENRES[g] for g in genre[items]] + [str(1930 + 10 * y) for y in year[items]]}, schema=schemas.RELATIONS)
    return types, rel, genre, year


def _latent(heads, tails, relation, probability, source="cooccur") -> pa.Table:
    n = len(heads)
    return pa.table({"head": pa.array(heads, pa.int32()), "tail": pa.array(tails, pa.int32()), "relation": pa.array(relation, pa.int16()),
                     "probability": pa.array(probability, pa.float32()), "source": pa.array([source] * n).dictionary_encode()})


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson(np.array([0, 5, 10]), np.array([10, 10, 10]))
    assert lo == pytest.approx([0.0, 0.2366, 0.7225], abs=1e-4)
    assert hi == pytest.approx([0.2775, 0.7634, 1.0], abs=1e-4)


def test_attributes_are_shared_per_value_and_per_group():
    types, rel, genre, year = _catalog()
    attrs = ItemAttributes.from_tables(types, rel, N_ITEMS)
    assert attrs.groups == ("genres", "year")
    heads, tails = random_pairs(N_ITEMS, 5000, seed=1)
    assert (heads != tails).all() and heads.min() >= 1 and tails.max() <= N_ITEMS
    shared = attrs.shared(heads, tails)
    assert (shared["genres"] == (genre[heads] == genre[tails])).all()
    assert (shared["year"] == (year[heads] == year[tails])).all()
    assert (shared["genres=Action"] == ((genre[heads] == 0) & (genre[tails] == 0))).all()


def test_a_planted_relation_is_above_chance_and_random_labels_are_not():
    types, rel, genre, _ = _catalog()
    attrs = ItemAttributes.from_tables(types, rel, N_ITEMS)
    rng = np.random.default_rng(3)
    # Type 10: pairs of items of the same genre (planted); type 11: random pairs labelled alike.
    h = rng.integers(1, N_ITEMS + 1, 20000)
    t = rng.integers(1, N_ITEMS + 1, 20000)
    same = np.flatnonzero((genre[h] == genre[t]) & (h != t))[:1500]
    other = np.flatnonzero(h != t)[-1500:]
    heads, tails = np.r_[h[same], h[other]], np.r_[t[same], t[other]]
    relation = np.r_[np.full(len(same), 10), np.full(len(other), 11)]
    latent = _latent(heads, tails, relation, np.full(len(heads), 0.9))
    titles = np.array([f"film {i}" for i in range(N_ITEMS + 1)], dtype=object)
    # Co-watching that shares a genre half the time: the planted type's lift over it is ~2.
    ch, ct = random_pairs(N_ITEMS, 4000, seed=5)
    ct = np.where(np.arange(4000) % 2 == 0, ct, np.r_[h[same], h[same], h[same]][:4000])
    ch = np.where(np.arange(4000) % 2 == 0, ch, np.r_[t[same], t[same], t[same]][:4000])
    r = relation_readout(latent, {10: "latent_1", 11: "latent_2", 12: "latent_3"}, attrs, titles, N_ITEMS, 0.5, (ch, ct))
    planted, noise, unused = r["types"]
    assert planted["confident"] == 1500 and planted["attributes"]["genres"]["share"] == 1.0
    assert planted["attributes"]["genres"]["lift_random_ci"][0] > 4  # chance is ~1/5
    assert "genres" in planted["above_chance"]
    assert noise["attributes"]["genres"]["lift_random"] == pytest.approx(1, abs=0.15)
    assert noise["attributes"]["genres"]["lift_random_ci"][0] < 1 and "genres" not in noise["above_chance"]
    assert unused["confident"] == 0 and "attributes" not in unused
    assert r["types_used"] == 2 and r["types_above_chance"] == 1
    assert r["baselines"]["random"]["genres"] == pytest.approx(0.2, abs=0.02)
    assert r["baselines"]["cooccur"]["genres"] == pytest.approx(0.6, abs=0.03)
    assert planted["attributes"]["genres"]["lift_cooccur"] == pytest.approx(1 / r["baselines"]["cooccur"]["genres"])
    assert len(planted["top_pairs"]) == 10 and planted["top_pairs"][0]["head_title"].startswith("film ")


def test_readout_counts_confident_pairs_and_their_sources():
    types, rel, _, _ = _catalog()
    attrs = ItemAttributes.from_tables(types, rel, N_ITEMS)
    latent = pa.concat_tables([_latent([1, 2, 3], [4, 5, 6], [10, 10, 10], [0.9, 0.4, 0.6], "cooccur"),
                               _latent([7, 8], [9, 10], [10, 10], [0.99, 0.8], "knn")])
    titles = item_titles(pa.table({"item": [1, 2], "title": ["A", ""], "text": ["a text", "b text"]}), N_ITEMS)
    assert titles[1] == "A" and titles[2] == "b text"
    r = relation_readout(latent, {10: "latent_1"}, attrs, titles, N_ITEMS, 0.5, random_pairs(N_ITEMS, 100, 0), top=2)
    (t,) = r["types"]
    assert t["pairs"] == 5 and t["confident"] == 4 and t["sources"] == {"cooccur": 2, "knn": 2, "both": 0}
    assert [p["probability"] for p in t["top_pairs"]] == pytest.approx([0.99, 0.9])
    page = readout_markdown(r, "x")
    assert "| latent_1 | nothing above chance | 4 of 5 | 2 / 2 / 0 |" in page


def test_readout_chart_is_written(tmp_path):
    types, rel, genre, _ = _catalog()
    attrs = ItemAttributes.from_tables(types, rel, N_ITEMS)
    r = relation_readout(_latent([1, 2], [3, 4], [10, 10], [0.9, 0.9]), {10: "latent_1"}, attrs, np.full(N_ITEMS + 1, "t", object), N_ITEMS, 0.5,
                         random_pairs(N_ITEMS, 100, 0))
    readout_chart(r, "tiny", tmp_path / "relations.png")
    assert (tmp_path / "relations.png").read_bytes()[:4] == b"\x89PNG"


def test_known_relations_recall(tmp_path):
    items = pa.table({"item": [1, 2, 3, 4, 5, 6], "title": ["Alien", "Aliens", "Alien 3", "Heat", "Heat", "Jaws"]})
    path = tmp_path / "known.csv"
    path.write_text("series,head_title,tail_title\nAlien,Alien,Aliens\nAlien,Aliens,Alien 3\nX,Heat,Jaws\nX,Jaws,Jaws 2\nAlien,Alien,Alien 3\n")
    known = load_known("tiny", items, path)
    assert known.heads.tolist() == [1, 2, 0, 6, 1] and known.tails.tolist() == [2, 3, 6, 0, 3]  # "Heat" is two items: no match
    # 2 -> 1 confident (the reverse order counts); 2 -> 3 below 0.5; 1 -> 3 not a candidate.
    r = known_recall(known, np.array([2, 2, 4]), np.array([1, 3, 5]), np.array([10, 11, 10]), np.array([0.8, 0.3, 0.9]),
                     {10: "latent_1", 11: "latent_2"}, n_items=6, min_probability=0.5)
    assert r["pairs"] == 5 and r["matched"] == 3 and r["candidates"] == 2 and r["found"] == 1
    assert r["recall"] == pytest.approx(1 / 3) and r["types"] == {"latent_1": 1}
    assert r["unmatched"] == ["Heat -> Jaws", "Jaws -> Jaws 2"] and r["found_pairs"][0].startswith("Alien -> Aliens (latent_1")
    assert load_known("no-such-dataset", items) is None


def test_the_shipped_ml100k_relations_are_distinct_film_pairs():
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(known_file("ml-100k")).to_pylist()
    pairs = {(r["head_title"], r["tail_title"]) for r in table}
    assert len(table) >= 40 and len(pairs) == len(table)
    assert ("Star Wars", "Empire Strikes Back, The") in pairs and all(h != t for h, t in pairs)


class _Seqs:
    """The fields of lrd.sequences.Sequences the pair functions read."""

    def __init__(self, users, items, split, n_items):
        self.users, self.items, self.split, self.n_items = np.array(users), np.array(items), np.array(split), n_items


def test_cooccur_counts_and_pmi():
    # user 1: 1 2 3 (train) 4 (test); user 2: 1 2 (train); user 3: 3 1 (train)
    seqs = _Seqs([1, 1, 1, 1, 2, 2, 3, 3], [1, 2, 3, 4, 1, 2, 3, 1], [0, 0, 0, 2, 0, 0, 0, 0], n_items=4)
    keys, counts = cooccur_counts(seqs, history_max=5)
    base = 5
    assert (keys == cooccur_keys(seqs, 5)).all()  # the same pairs as before
    assert dict(zip(keys.tolist(), counts.tolist())) == {1 * base + 2: 2, 1 * base + 3: 1, 2 * base + 3: 1, 3 * base + 1: 1}
    pmi = cooccur_pmi(keys, counts, 4)
    # N = 5; 1->2: c = 2, c(1, .) = 3, c(., 2) = 2: log(2 * 5 / 6)
    assert pmi[keys.tolist().index(1 * base + 2)] == pytest.approx(np.log(10 / 6))
    assert strong_cooccur(keys, counts, 4, 1, None).all()  # the previous behaviour: every pair
    assert keys[strong_cooccur(keys, counts, 4, 2, None)].tolist() == [1 * base + 2]
    # 2 -> 3 and 3 -> 1: log(1 * 5 / (1 * 2)) = 0.92; 1 -> 3: log(1 * 5 / (3 * 2)) < 0; 1 -> 2: 0.51
    assert keys[strong_cooccur(keys, counts, 4, 1, 0.6)].tolist() == [2 * base + 3, 3 * base + 1]


def test_the_cowatching_baseline_is_consecutive_train_items():
    seqs = _Seqs([1, 1, 1, 1, 2, 2, 3, 3], [1, 2, 3, 4, 1, 2, 3, 1], [0, 0, 0, 2, 0, 0, 0, 0], n_items=4)
    heads, tails = consecutive_pairs(seqs)
    assert list(zip(heads.tolist(), tails.tolist())) == [(1, 2), (2, 3), (1, 2), (3, 1)]


def test_exact_neighbours_by_cosine():
    vectors = np.array([[0, 0], [1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    keys, n = exact_knn_keys(vectors, 1)
    assert sorted(keys.tolist()) == [1 * 5 + 2, 2 * 5 + 1, 3 * 5 + 4, 4 * 5 + 3] and n == 4


def test_training_focus_turns_weak_pairs_into_padding():
    from lrd.discover.model import DiscoveryModel
    from lrd.keys import KeySet
    from lrd.models.batch import Batch

    class Graph:
        n_entities, n_relations, n_items = 6, 3, 5

    model = DiscoveryModel(Graph(), 4, None, 0.0, KeySet(np.array([1 * 6 + 5, 3 * 6 + 4]), is_sorted=True))
    batch = Batch(users=torch.tensor([1, 2]), history=torch.tensor([[0, 1, 2], [3, 1, 2]]), gaps=torch.zeros(2, 3),
                  candidates=torch.tensor([[5, 1], [4, 2]]), lrd_negatives=torch.ones(2, 3, dtype=torch.long))
    focused = model.focus(batch)
    assert focused.history.tolist() == [[0, 1, 0], [3, 0, 0]] and focused.mask.tolist() == [[False, True, False], [True, False, False]]
    assert DiscoveryModel(Graph(), 4, None, 0.0).focus(batch) is batch  # no filter: the batch as it is


# --------------------------------------------------------------------------------------------
# Strength, names and item-item shares on a planted relation (issue 27)

def _planted(seed: int = 0):
    """A catalog whose latent type 10 holds 400 same-genre pairs (planted) and 400 random pairs,
    with LLM vectors that lean towards each item's genre (as the item text names it) and a
    decoder whose type-10 embedding rewards same-genre pairs: what discover learns when a
    relation is there."""
    types, rel, genre, year = _catalog(seed)
    rng = np.random.default_rng(seed)
    d = 8
    centres = rng.normal(size=(len(GENRES), 32))
    text = centres[genre] + 0.7 * rng.normal(size=(N_ITEMS + 1, 32))
    text[0] = 0
    # Decoder: entities carry the genre on the first 5 dimensions, and type 10's vector reads them.
    entities = 0.3 * rng.normal(size=(N_ITEMS + 1, d))
    entities[np.arange(N_ITEMS + 1), genre] += 1.0
    relations = np.zeros((2, d))
    relations[0, : len(GENRES)] = 1.0
    relations[1] = rng.normal(size=d)
    h = rng.integers(1, N_ITEMS + 1, 20000)
    t = rng.integers(1, N_ITEMS + 1, 20000)
    same = np.flatnonzero((genre[h] == genre[t]) & (h != t))[:400]
    other = np.flatnonzero((genre[h] != genre[t]) & (h != t))[:400]
    heads, tails = np.r_[h[same], h[other]], np.r_[t[same], t[other]]
    return types, rel, text, entities, relations, heads, tails, np.r_[np.ones(400, bool), np.zeros(400, bool)]


def test_strength_ranks_the_planted_pairs_first():
    from lrd.discover.strength import pair_strength, strength_scale

    _, _, text, entities, relations, heads, tails, planted = _planted()
    scale = strength_scale(text, entities, relations)
    strength = pair_strength(scale, heads, tails, np.zeros(len(heads), np.int64))
    # Random pairs sit near 0 by construction; planted ones well above.
    assert abs(float(np.median(pair_strength(scale, *random_pairs(N_ITEMS, 2000, 9), np.zeros(2000, np.int64))))) < 0.3
    top = np.argsort(-strength, kind="stable")[:200]
    assert planted[top].mean() > 0.95
    assert strength[planted].mean() > strength[~planted].mean() + 1
    # Symmetric: the weaker direction of the reconstruction and the cosine do not care about order.
    assert pair_strength(scale, tails, heads, np.zeros(len(heads), np.int64)) == pytest.approx(strength, abs=1e-4)


def test_a_planted_type_is_named_after_its_attribute_and_shows_its_strongest_pairs_first():
    from lrd.discover.strength import pair_strength, strength_scale

    types, rel, text, entities, relations, heads, tails, planted = _planted()
    strength = pair_strength(strength_scale(text, entities, relations), heads, tails, np.zeros(len(heads), np.int64))
    latent = _latent(heads, tails, np.full(len(heads), 10), np.full(len(heads), 0.99)).append_column("strength", pa.array(strength))
    attrs = ItemAttributes.from_tables(types, rel, N_ITEMS)
    titles = np.array([f"film {i}" for i in range(N_ITEMS + 1)], dtype=object)
    r = relation_readout(latent, {10: "latent_1"}, attrs, titles, N_ITEMS, 0.5, random_pairs(N_ITEMS, 4000, 5), top=20)
    (t,) = r["types"]
    assert t["description"].startswith("same genre x")
    # Confident: probable and strong; the random half mostly falls below the strength bar.
    assert t["confident"] == int(((strength >= 1.0)).sum()) < len(heads)
    d = t["strength_deciles"]
    assert d["attribute"] == "genres" and d["top_above_bottom"] and d["share"][0] > 0.9 and r["types_strength_ordered"] == 1
    shown = [(p["head"], p["tail"]) for p in t["top_pairs"]]
    assert [p["strength"] for p in t["top_pairs"]] == sorted((p["strength"] for p in t["top_pairs"]), reverse=True)
    planted_pairs = set(zip(heads[planted].tolist(), tails[planted].tolist()))
    assert all(pair in planted_pairs for pair in shown)
    page = readout_markdown(r, "x")
    assert "| latent_1 | genres |" in page and "latent_1**: same genre x" in page


def test_item_item_shares_name_a_type_that_gathers_complements():
    from lrd.discover.describe import item_item_shares, type_description

    types = pa.table({"id": pa.array([0, 1, 2], pa.int16()), "name": ["any", "complement", "substitute"],
                      "kind": ["virtual", "item-item", "item-item"]}, schema=schemas.RELATION_TYPES)
    rng = np.random.default_rng(0)
    h, t = random_pairs(N_ITEMS, 3000, seed=2)
    # Complement triples: the first 300 pairs (stored in reverse: either direction counts).
    rel = pa.table({"head": pa.array(t[:300], pa.int32()), "relation": pa.array(np.ones(300), pa.int16()),
                    "tail": pa.array(h[:300], pa.int32()), "value": pa.array([None] * 300, pa.string())}, schema=schemas.RELATIONS)
    relation = np.where(np.arange(3000) < 300, 10, rng.choice([11, 12], 3000))
    out = item_item_shares(h, t, relation, {10: "latent_1", 11: "latent_2", 12: "latent_3"}, types, rel, N_ITEMS)
    assert out["base"]["complement"] == pytest.approx(0.1, abs=0.01) and out["base"]["substitute"] == 0
    first = out["types"]["latent_1"]["complement"]
    assert first["share"] == 1.0 and first["lift_ci"][0] > 5
    assert out["types"]["latent_2"]["complement"]["share"] < 0.05
    entry = {"name": "latent_1", "confident": 300, "attributes": {}}
    assert type_description(entry, out) == f"complement x{first['lift']:.1f}"
    assert type_description({"name": "latent_2", "confident": 10, "attributes": {}}, out) == "nothing above chance"


def test_relation_types_get_a_description_column():
    from lrd.discover.describe import with_descriptions

    types = pa.table({"id": pa.array([0, 1], pa.int16()), "name": ["any", "latent_1"], "kind": ["virtual", "latent"]}, schema=schemas.RELATION_TYPES)
    out = with_descriptions(types, {"types": [{"id": 1, "description": "same genre x2.0"}]})
    assert out.column("description").to_pylist() == [None, "same genre x2.0"]


def test_relations_show_orders_by_strength_then_ids(tmp_path):
    import duckdb
    import pyarrow.parquet as pq

    from lrd.sql import count_pairs, latent_pairs, relation_type_summary

    latent = _latent([5, 1, 2, 3], [6, 9, 8, 7], [10, 10, 10, 10], [0.99, 0.99, 0.6, 0.99]).append_column(
        "strength", pa.array([2.0, 3.0, 3.0, 0.5], pa.float32()))
    pq.write_table(latent, tmp_path / "latent.parquet")
    pq.write_table(pa.table({"item": pa.array(range(1, 10), pa.int32()), "title": [f"t{i}" for i in range(1, 10)],
                             "text": [""] * 9}), tmp_path / "items.parquet")
    pq.write_table(pa.table({"id": pa.array([10], pa.int16()), "name": ["latent_1"], "kind": ["latent"], "description": ["same genre x2.0"]}),
                   tmp_path / "relation_types.parquet")
    conn = duckdb.connect()
    for name in ("latent", "items", "relation_types"):
        conn.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{tmp_path / name}.parquet')")
    columns, rows = latent_pairs(conn, 10, 10, 0.5, False, 1.0)
    assert columns[-2] == "strength" and [(r[0], r[2]) for r in rows] == [(1, 9), (2, 8), (5, 6)]  # 3 -> 7 is weak
    assert count_pairs(conn, 10, 0.5, False, 1.0) == 3 and count_pairs(conn, 10) == 4
    columns, rows = relation_type_summary(conn, 0.5, 1.0)
    assert columns[-1] == "description" and rows == [(10, "latent_1", "latent", 4, 3, "same genre x2.0")]
