"""Amazon-style synthetic dataset in the ReChorus layout (the format the LRD reference code reads).

    python benchmarks/amazon_like.py OUT_DIR [--users 4900 --items 2400 --seed 2019]

Shaped like the reference's Office data (4,905 users, 2,420 items, 53,258 interactions, ~1.14
predefined triples per interaction): category/brand attributes, complement (also_bought) and
substitute (also_viewed) lists, day-resolution timestamps with same-day purchases,
leave-one-out splits, 99 stored negatives per dev/test row drawn with replacement. Signal to
learn: users keep to a few categories; half the purchases follow a link of a recent purchase
within days. Files: train.csv, dev.csv, test.csv, item_meta.csv, <folder name>.text. numpy
throughout; the one Python loop runs over sequence positions, vectorised across users.
"""

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

DAY, FIRST_DAY, SPAN_DAYS = 86400, 10957, 5000  # day resolution, from 2000-01-01, ~14 years
TRIPLES_PER_INTERACTION = 1.14  # Office's gamma
P_FOLLOW = 0.5  # share of purchases that follow a complement/substitute link of a recent item
NOUNS = np.array(["pen", "paper", "stapler", "binder", "folder", "marker", "tape", "label", "ink", "toner", "desk", "lamp"])


def _zipf(rng: np.random.Generator, n: int, s: float) -> np.ndarray:
    """Popularity-like weights (rank^-s) in random order, summing to 1."""
    w = np.arange(1, n + 1, dtype=float) ** -s
    return w[rng.permutation(n)] / w.sum()


def _by_group(group: np.ndarray, weight: np.ndarray, n_groups: int):
    """draw(rng, groups): one item per entry, from that group (category), in proportion to weight."""
    order, size = np.argsort(group, kind="stable"), np.bincount(group, minlength=n_groups)
    cum, end = np.cumsum(weight[order]), np.cumsum(size)
    lo, hi = np.r_[0.0, cum][end - size], np.r_[0.0, cum][end]

    def draw(rng: np.random.Generator, g: np.ndarray) -> np.ndarray:
        u = lo[g] + rng.random(len(g)) * (hi[g] - lo[g])
        return order[np.minimum(np.searchsorted(cum, u, side="right"), end[g] - 1)]
    return draw


def _links(rng, n_links, tail_cat, draw):
    """Item lists as deduplicated (head, tail) pairs, without self links."""
    heads = np.repeat(np.arange(len(n_links)), n_links)
    tails = draw(rng, tail_cat(heads))
    pairs = np.unique(np.stack([heads, tails], 1)[heads != tails], axis=0)
    return pairs[:, 0], pairs[:, 1]


def _list_literals(heads: np.ndarray, tails: np.ndarray, n: int) -> pa.Array:
    """Python list literals "[3, 17]" per item 1..n (heads sorted), built in Arrow's C code."""
    offsets = np.r_[0, np.cumsum(np.bincount(heads, minlength=n + 1)[1:])].astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), pc.cast(pa.array(tails), pa.string()))
    return pc.binary_join_element_wise("[", pc.binary_join(lists, ", "), "]", "")


def _write(table: pa.Table, path: Path) -> None:
    """Tab-separated with a bare header line (Arrow would quote the header names)."""
    with open(path, "wb") as f:
        f.write(("\t".join(table.column_names) + "\n").encode())
        pcsv.write_csv(table, f, pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none"))


def generate(folder, n_users: int = 4900, n_items: int = 2400, seed: int = 2019, log=None) -> Path:
    """Write the dataset into `folder`; `log` (e.g. print) gets a one-line summary."""
    if n_items < 10 or n_users < 1:
        raise ValueError("need at least 10 items and 1 user")
    rng, folder = np.random.default_rng(seed), Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    # Items: mild popularity skew (rank^-0.3: popularity alone scores dev NDCG@5 ~0.09, so a model
    # must learn the relations to go further); Zipf-sized categories, each with an item; brands
    # nested in categories, ~7 items each (Office: 39 categories, 341 brands).
    n_cat = max(2, round(n_items / 62))
    cat = rng.choice(n_cat, n_items, p=_zipf(rng, n_cat, 1.0))
    cat[:n_cat] = np.arange(n_cat)
    pop = _zipf(rng, n_items, 0.3)
    by_cat = _by_group(cat, pop, n_cat)
    cat_mass = np.bincount(cat, pop, n_cat)
    per_cat = np.maximum(1, np.bincount(cat, minlength=n_cat) // 7)
    brand = np.r_[0, np.cumsum(per_cat)][cat] + (rng.random(n_items) * per_cat[cat]).astype(int)

    # Users: 5 or more purchases (as a 5-core), mean ~10.9, at most half the catalogue (negatives
    # must remain); two favourite categories each.
    lengths = np.minimum(4 + rng.geometric(1 / 6.9, n_users), n_items // 2)
    fav = rng.choice(n_cat, (n_users, 2), p=cat_mass / cat_mass.sum())

    # Complement lists reach into two partner categories, substitutes stay in the category;
    # sizes grow with popularity, so that triples ~ 1.14 x interactions as on Office (x 1.1 makes
    # up for the repeated draws that are dropped).
    per_item = max(0.0, 1.1 * TRIPLES_PER_INTERACTION * lengths.sum() / n_items - 1.8)
    size = per_item * pop**0.3 / np.mean(pop**0.3)
    partner = rng.integers(0, n_cat, (n_cat, 2))
    comp = _links(rng, rng.poisson(0.65 * size), lambda h: np.where(
        rng.random(len(h)) < 0.4, cat[h], partner[cat[h], rng.integers(0, 2, len(h))]), by_cat)
    subs = _links(rng, rng.poisson(0.35 * size), lambda h: np.where(
        rng.random(len(h)) < 0.9, cat[h], rng.choice(n_cat, len(h), p=cat_mass / cat_mass.sum())), by_cat)
    # One CSR over both kinds: row kind * n_items + item (tails padded so empty rows index safely).
    heads = np.r_[comp[0], subs[0] + n_items]
    link_tails = np.r_[np.r_[comp[1], subs[1]][np.argsort(heads, kind="stable")], 0]
    link_start = np.r_[0, np.cumsum(np.bincount(heads, minlength=2 * n_items))]

    # Purchases position by position. Follow-ups (a link of one of the last few items) come
    # within days, a third the same day; other purchases (favourite categories, sometimes any)
    # weeks to months apart. A repeat purchase is redrawn (reviews hold one per user and item).
    seq = np.full((n_users, lengths.max()), -1)
    day = np.zeros_like(seq)
    seen = np.zeros((n_users, n_items), bool)
    for t in range(lengths.max()):
        u = np.flatnonzero(lengths > t)
        r = rng.random(len(u))
        c = np.where(r < 0.6, fav[u, 0], np.where(r < 0.85, fav[u, 1], rng.integers(0, n_cat, len(u))))
        item, follow = by_cat(rng, c), np.zeros(len(u), bool)
        if t > 0:
            anchor = seq[u, t - np.minimum(rng.geometric(0.6, len(u)), t)]
            row = anchor + n_items * (rng.random(len(u)) < 0.3)  # complement, or substitute 30%
            start, deg = link_start[row], link_start[row + 1] - link_start[row]
            follow = (rng.random(len(u)) < P_FOLLOW) & (deg > 0)
            linked = link_tails[start + (rng.random(len(u)) * deg).astype(int)]
            item = np.where(follow, linked, item)
        for _ in range(5):
            again = seen[u, item]
            item[again], follow[again] = by_cat(rng, c[again]), False
        seen[u, item] = True
        gap = np.where(follow, rng.geometric(0.35, len(u)) - 1,
                       np.where(rng.random(len(u)) < 0.12, 0, rng.geometric(1 / 45, len(u))))
        day[u, t] = rng.integers(0, SPAN_DAYS, len(u)) if t == 0 else day[u, t - 1] + gap
        seq[u, t] = item

    # Flatten, keep each (user, item) once, sort by (time, user) stably (same-day purchases of a
    # user keep their order), number users and items by first appearance as the reference does.
    users, pos = np.nonzero(seq >= 0)
    items, times = seq[users, pos], (FIRST_DAY + day[users, pos]) * DAY
    keep = np.sort(np.unique(users * n_items + items, return_index=True)[1])
    keep = keep[np.lexsort((users[keep], times[keep]))]
    users, items, times = users[keep], items[keep], times[keep]
    new_user, new_item = np.zeros(n_users, np.int64), np.zeros(n_items, np.int64)
    for new, ids in ((new_user, users), (new_item, items)):
        kept = ids[np.sort(np.unique(ids, return_index=True)[1])]
        new[kept] = np.arange(1, len(kept) + 1)
    users, items, n_kept = new_user[users], new_item[items], int(new_item.max())

    # Leave-one-out: a user's last purchase is test, the one before dev; the first stays train.
    counts = np.bincount(users)[1:]
    from_end = np.empty(len(users), np.int64)
    from_end[np.argsort(users, kind="stable")] = np.repeat(np.cumsum(counts), counts) - 1 - np.arange(len(users))
    n = counts[users - 1]
    split = np.select([(from_end == 0) & (n >= 2), (from_end == 1) & (n >= 3)], [2, 1], 0)

    # 99 negatives per dev/test row: uniform over items the user never touched, with replacement.
    touched = np.zeros((users.max() + 1, n_kept + 1), bool)
    touched[users, items] = True
    for code, name in enumerate(("train", "dev", "test")):
        sel = split == code
        table = {"user_id": users[sel], "item_id": items[sel], "time": times[sel]}
        if code:
            neg = rng.integers(1, n_kept + 1, (sel.sum(), 99))
            while (bad := touched[users[sel][:, None], neg]).any():
                neg[bad] = rng.integers(1, n_kept + 1, int(bad.sum()))
            table["neg_items"] = _list_literals(np.repeat(np.arange(1, sel.sum() + 1), 99), neg.ravel(), int(sel.sum()))
        _write(pa.table(table), folder / f"{name}.csv")

    # Item metadata over the kept items; ~3% miss the category and ~15% the brand (code 0).
    old = np.argsort(new_item)[-n_kept:]  # old id of new ids 1..n_kept
    cat_code = np.where(rng.random(n_kept) < 0.03, 0, cat[old] + 1)
    brand_code = np.where(rng.random(n_kept) < 0.15, 0, brand[old] + 1)
    meta = {"item_id": np.arange(1, n_kept + 1), "i_category": cat_code, "i_brand": brand_code}
    n_triples = int((cat_code > 0).sum() + (brand_code > 0).sum())
    for name, (h, t) in (("r_complement", comp), ("r_substitute", subs)):
        h, t = new_item[h], new_item[t]
        keep = np.flatnonzero((h > 0) & (t > 0))
        o = keep[np.argsort(h[keep], kind="stable")]
        meta[name], n_triples = _list_literals(h[o], t[o], n_kept), n_triples + len(o)
    _write(pa.table(meta), folder / "item_meta.csv")
    # Item text as the reference builds it ("<title> <category> <brand>"); the title names the category.
    words = [NOUNS[cat[old] % len(NOUNS)], (old % 997).astype(str), np.char.add("cat", (cat[old] + 1).astype(str)),
             np.char.add("brand", (brand[old] + 1).astype(str))]
    text = pc.binary_join_element_wise(*[pa.array(w) for w in words], " ")
    _write(pa.table({"id": np.arange(1, n_kept + 1), "text": text}), folder / f"{folder.name}.text")
    if log:
        log(f"{folder}: {users.max()} users, {n_kept} items, {len(users)} interactions, "
            f"{n_triples} triples, gamma {n_triples / len(users):.3f}")
    return folder


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--users", type=int, default=4900)
    ap.add_argument("--items", type=int, default=2400)
    ap.add_argument("--seed", type=int, default=2019)
    a = ap.parse_args()
    generate(a.out_dir, a.users, a.items, a.seed, log=print)
