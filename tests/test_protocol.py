"""The evaluation protocol: k-core, ids, chronological splits, negatives."""

import numpy as np
import pyarrow as pa
import pytest

from lrd.data import protocol, sampling


def test_encode_ids_sorts_numeric_ids_numerically():
    codes, vocab = protocol.encode_ids(pa.array(["10", "9", "100", "9"]))
    assert vocab.to_pylist() == ["9", "10", "100"]
    assert codes.tolist() == [2, 1, 3, 1]


def test_encode_ids_sorts_strings_lexicographically():
    codes, vocab = protocol.encode_ids(pa.array(["b", "a", "c", "a"]))
    assert vocab.to_pylist() == ["a", "b", "c"]
    assert codes.tolist() == [2, 1, 3, 1]


def test_kcore_is_iterative():
    # user 3 has 2 items; dropping it leaves item 12 with 1 user, which must go too, which
    # leaves user 2 with one interaction fewer than k.
    users = np.array([1, 1, 1, 2, 2, 2, 3, 3])
    items = np.array([10, 11, 12, 10, 11, 12, 12, 13])
    keep = protocol.kcore_mask(users, items, 2)
    assert keep.tolist() == [True, True, True, True, True, True, False, False]
    keep3 = protocol.kcore_mask(users, items, 3)
    assert not keep3.any()


def test_dedupe_keeps_first_of_exact_repeats():
    users = np.array([1, 1, 1, 2])
    items = np.array([5, 5, 5, 5])
    times = np.array([10, 10, 11, 10])
    assert protocol.dedupe(users, items, times).tolist() == [True, False, True, True]


def test_chronological_order_is_stable_on_ties():
    users = np.array([2, 1, 2, 1])
    times = np.array([5, 5, 5, 1])
    order = protocol.chronological_order(users, times)
    # time 1 first, then time 5 by user (user 1 before user 2), ties in file order.
    assert order.tolist() == [3, 1, 0, 2]


def test_leave_one_out_keeps_first_interaction_in_train():
    users = np.array([1, 2, 1, 1, 3, 2, 1, 3])  # chronological
    split = protocol.leave_one_out(users)
    by_user = {u: split[users == u].tolist() for u in (1, 2, 3)}
    assert by_user[1] == [protocol.TRAIN, protocol.TRAIN, protocol.DEV, protocol.TEST]
    assert by_user[2] == [protocol.TRAIN, protocol.TEST]  # two interactions: no dev row
    assert by_user[3] == [protocol.TRAIN, protocol.TEST]


def _seen(n_users=50, n_items=300, per_user=40, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(1, n_users + 1), per_user)
    items = np.concatenate([rng.choice(np.arange(1, n_items + 1), per_user, replace=False) for _ in range(n_users)])
    return users, items, sampling.UserItemSet(users, items, n_items)


def test_negatives_are_distinct_unseen_and_seeded():
    users, items, seen = _seen()
    rows = np.arange(1, 51)
    a = sampling.sample_negatives(np.random.default_rng(3), rows, seen, 99)
    b = sampling.sample_negatives(np.random.default_rng(3), rows, seen, 99)
    assert np.array_equal(a, b)
    assert a.shape == (50, 99)
    assert all(len(set(r)) == 99 for r in a.tolist())
    assert not seen.contains(rows, a).any()
    assert a.min() >= 1 and a.max() <= 300


def test_negatives_for_users_who_touched_almost_everything():
    # 30 items; user 1 touched 25 of them: only 5 can be negatives, found exactly.
    users = np.r_[np.ones(25, int), np.full(3, 2)]
    items = np.r_[np.arange(1, 26), [1, 2, 3]]
    seen = sampling.UserItemSet(users, items, 30)
    neg = sampling.sample_negatives(np.random.default_rng(0), np.array([1, 1, 2]), seen, 5)
    assert sorted(neg[0].tolist()) == [26, 27, 28, 29, 30]
    assert sorted(neg[1].tolist()) == [26, 27, 28, 29, 30]
    assert not seen.contains(np.array([2] * 5), neg[2]).any()
    with pytest.raises(ValueError):
        sampling.sample_negatives(np.random.default_rng(0), np.array([1]), seen, 6)


def test_negatives_are_uniform():
    users, items, seen = _seen(n_users=1, n_items=20, per_user=5)
    draws = sampling.sample_negatives(np.random.default_rng(1), np.ones(20000, int), seen, 3)
    counts = np.bincount(draws.ravel(), minlength=21)[1:]
    allowed = counts[counts > 0]
    assert len(allowed) == 15
    assert allowed.min() / allowed.max() > 0.9  # 4,000 expected each
