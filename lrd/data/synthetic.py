"""A tiny generated dataset and the settings that train on it in seconds: the one-minute demo
(`make demo`) and the tests run the real pipeline on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

GENRES = ["Action", "Comedy", "Drama", "Horror", "Sci-Fi"]


def write_recbole(folder: Path, n_users: int = 40, n_items: int = 30, per_user: int = 12, seed: int = 0, kg: bool = True) -> Path:
    """A small RecBole atomic dataset with genres, years, directors and a sequel chain.

    Every user has `per_user` interactions with distinct items and increasing timestamps;
    items 1..n_items, users 1..n_users (raw ids as strings of those numbers).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=per_user, replace=False)
        rows += _user_rows(rng, u, items)
    (folder / "tiny.inter").write_text("\n".join(rows) + "\n")
    films = [(f"Movie number {i}", 1930 + (i * 3) % 70, _genres(i)) for i in range(1, n_items + 1)]
    _write_items(folder, films, kg, sequels=[(1, 2), (2, 3), (10, 11)])
    return folder


# The demo's planted relation: film series whose parts users watch one after the other.
DEMO_SERIES = ((1, 2, 3), (12, 13), (24, 25, 26), (35, 36), (47, 48, 49), (58, 59))
DEMO_SEQUEL_PAIRS = 2 * sum(len(chain) - 1 for chain in DEMO_SERIES)  # (a part, the next part), either direction
_WORDS = (["Silent", "Golden", "Broken", "Hidden", "Crimson", "Frozen", "Burning", "Distant", "Velvet", "Iron"],
          ["River", "Empire", "Garden", "Signal", "Harbor", "Mountain", "Mirror", "Frontier", "Station", "Lantern"])


def write_demo_recbole(folder: Path, n_users: int = 40, n_items: int = 60, per_user: int = 12, seed: int = 0,
                       follow_sequel: float = 0.8, series=DEMO_SERIES) -> Path:
    """The demo's dataset: write_recbole's layout, with a relation planted for discover to find.

    Films have distinct titles; a sequel is titled, dated and classed after its first part
    ("The Silent River 2", two years later, same genres), and a user who watches a film that has
    a sequel watches the sequel next with probability `follow_sequel`. So the sequel pairs both
    read alike and follow each other in the histories, as real series do.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sequel_of = {a: b for chain in series for a, b in zip(chain, chain[1:])}
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for u in range(1, n_users + 1):
        rows += _user_rows(rng, u, _watch_order(rng, n_items, per_user, sequel_of, follow_sequel))
    (folder / "tiny.inter").write_text("\n".join(rows) + "\n")
    _write_items(folder, _demo_films(n_items, series), True, sequels=sorted(sequel_of.items()))
    return folder


def _watch_order(rng: np.random.Generator, n_items: int, per_user: int, sequel_of: dict[int, int], follow: float) -> list[int]:
    """`per_user` distinct films in watching order: each next one the sequel of the last (with
    probability `follow`, when there is one not yet seen), else any film not yet seen."""
    order: list[int] = []
    while len(order) < per_user:
        sequel = sequel_of.get(order[-1]) if order else None
        if sequel is not None and sequel not in order and rng.random() < follow:
            order.append(sequel)
            continue
        unseen = np.setdiff1d(np.arange(1, n_items + 1), order)
        order.append(int(rng.choice(unseen)))
    return order


def _demo_films(n_items: int, series) -> list[tuple[str, int, str]]:
    """(title, year, genres) per film: distinct titles, later parts of a series after the first."""
    adjectives, nouns = _WORDS
    # up to 100 distinct titles; films next to each other share no word
    films = [(f"The {adjectives[(i - 1) % 10]} {nouns[((i - 1) // 10 + 3 * (i - 1)) % 10]}", 1930 + (i * 3) % 70, _genres(i))
             for i in range(1, n_items + 1)]
    for chain in series:
        title, year, genres = films[chain[0] - 1]
        for part, item in enumerate(chain[1:], start=2):
            films[item - 1] = (f"{title} {part}", year + 2 * (part - 1), genres)
    return films


def _genres(i: int) -> str:
    return " ".join(sorted({GENRES[i % 5], GENRES[(i * 7) % 5]}))


def _user_rows(rng: np.random.Generator, user: int, items) -> list[str]:
    """The user's interactions with `items`, in that order (increasing timestamps)."""
    times = 880_000_000 + np.sort(rng.choice(10_000_000, size=len(items), replace=False))
    return [f"{user}\t{i}\t{rng.integers(1, 6)}\t{t}" for i, t in zip(items, times)]


def _write_items(folder: Path, films: list[tuple[str, int, str]], kg: bool, sequels) -> None:
    """tiny.item from (title, year, genres) per film 1..n; with `kg`, tiny.link and tiny.kg:
    directors, the `sequels` (first part, next part) and one sequel outside the dataset."""
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    items += [f"{i}\t{title}\t{year}\t{genres}" for i, (title, year, genres) in enumerate(films, start=1)]
    (folder / "tiny.item").write_text("\n".join(items) + "\n")
    if kg:
        n_items = len(films)
        link = ["item_id:token\tentity_id:token"] + [f"{i}\tm.film{i}" for i in range(1, n_items + 1)]
        (folder / "tiny.link").write_text("\n".join(link) + "\n")
        triples = ["head_id:token\trelation_id:token\ttail_id:token"]
        triples += [f"m.film{i}\tfilm.film.directed_by\tm.person{i % 6}" for i in range(1, n_items + 1)]
        triples += [f"m.film{a}\tfilm.film.sequel\tm.film{b}" for a, b in sequels]
        triples += ["m.film3\tfilm.film.sequel\tm.unknownfilm"]
        (folder / "tiny.kg").write_text("\n".join(triples) + "\n")


def tiny_params(raw: Path, **overrides) -> dict:
    """A params dict for the tiny dataset; `overrides` replace whole top-level groups."""
    params = {
        "seed": 7,
        "datasets": {"tiny": {"format": "recbole", "source": {"kind": "path", "path": str(raw)}}},
        "ingest": {"min_core": 2, "n_negatives": 5, "max_items_per_value": 50,
                   "kg_relations": {"film.film.directed_by": "director", "film.film.sequel": "sequel"}},
        "embed": {"batch_size": 16},
        "dim": 16,
        "history_max": 5,
        "discover": {"latent_types": 3, "max_epochs": 3, "batch_size": 64, "knn": 3},
        "models": {
            "sasrec": {"arch": "sasrec", "lr": 1.0e-3, "layers": 1, "heads": 1},
            "rcf": {"arch": "rcf", "lr": 1.0e-3},
            "rcf_lrd": {"arch": "rcf", "lr": 1.0e-3, "lrd": True},
            "kda": {"arch": "kda", "lr": 1.0e-3},
            "kda_lrd": {"arch": "kda", "lr": 1.0e-3, "lrd": True},
            "kda_static": {"arch": "kda", "lr": 1.0e-3, "static_latent": True},
        },
        "train": {
            "models": ["sasrec", "kda"],
            "lrd_models": ["kda_lrd"],
            "static_models": [],
            "ablation_models": [],
            "seeds": [1],
            "layers": 1,
            "heads": 2,
            "batch_size": 64,
            "max_epochs": 2,
            "stopping": "patience",
            "patience": 1,
            "precision": "fp32",
            "threads": 1,
            "compile": "none",  # compiling costs more than these tiny runs; tests/test_fast_paths.py checks it
        },
    }
    params.update(overrides)
    return params


def pipeline_params(repo: dict, raw: Path) -> dict:
    """The repository's params (`repo`) with the tiny dataset and tiny models: what a DVC run of
    the real pipeline needs (DVC wants every param a stage lists to be in the file)."""
    tiny = tiny_params(raw)
    merged = {**repo, **{k: v for k, v in tiny.items() if not isinstance(v, dict)}, "datasets": tiny["datasets"], "models": tiny["models"]}
    for section in ("ingest", "embed", "discover", "train"):
        merged[section] = {**repo[section], **tiny[section]}
    return merged


def demo_params(repo: dict, raw: Path) -> dict:
    """The demo's params (`make demo`): pipeline_params for write_demo_recbole's data, five models
    x 2 seeds, 29 stored negatives per dev/test row (30 candidates, so HR@10 and HR@20 can fall
    below 1), and discover trained long enough for its types to become confident (tiny_params'
    3 epochs leave q near uniform), on the pairs far above chance: the random watching makes
    hundreds of pairs co-occur a time or two by luck, the planted series many times."""
    params = pipeline_params(repo, raw)
    params["ingest"]["n_negatives"] = 29
    params["discover"].update(max_epochs=30, train_min_pmi=2.0)
    params["train"].update(models=["sasrec", "rcf", "kda"], lrd_models=["rcf_lrd", "kda_lrd"], seeds=[1, 2])
    return params


def planted_by_type(latent, items, min_probability: float, min_strength: float, series=DEMO_SERIES) -> dict[int, int]:
    """How many planted sequel pairs (either direction) each latent type holds confidently, most
    first: `latent` is discover's latent.parquet, `items` ingest's items.parquet (item ids are
    renumbered there; raw ids are the generator's)."""
    ids = dict(zip((int(r) for r in items.column("raw_id").to_pylist()), items.column("item").to_pylist()))
    planted = {(ids[a], ids[b]) for chain in series for a, b in zip(chain, chain[1:]) if a in ids and b in ids}
    planted |= {(b, a) for a, b in planted}
    counts: dict[int, int] = {}
    for h, t, r, q, s in zip(*(latent.column(c).to_pylist() for c in ("head", "tail", "relation", "probability", "strength"))):
        if (h, t) in planted and q >= min_probability and s >= min_strength:
            counts[r] = counts.get(r, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))
