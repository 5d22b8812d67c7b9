"""Item-kNN and Markov-chain recommenders on tiny hand-computed cases.

The training sequences of `tiny_split()` (5 items):
    s0 = [0, 1, 2]   s1 = [1, 2, 3]   s2 = [0, 2, 0] (item 0 re-rated)   extra s3 = [3, 4]
Raters per item (binary, a re-rating counts once): U_0 = {s0, s2}, U_1 = {s0, s1}, U_2 = {s0, s1, s2},
U_3 = {s1, s3}, U_4 = {s3}. Training popularity (occurrences, re-ratings counted): [3, 2, 3, 2, 1], so
the popularity order is 0, 2, 1, 3, 4 (0 and 2 tie at 3 and 1 and 3 at 2 -> lower index first).
"""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from recsys.data.splits import Catalogue, SequenceSplit
from recsys.models.base import FitContext
from recsys.models.config import recommender_config
from recsys.models.itemknn import (
    ItemKNN,
    binary_user_items,
    item_cosine_topk,
    recency_weights,
    topk_ranked,
)
from recsys.models.markov import Markov
from recsys.models.ranking import topk_excluding

R6 = 1 / np.sqrt(6)


def tiny_split(valid=(3, 3, 1), test=(4, 4, 4)) -> SequenceSplit:
    return SequenceSplit(
        name="leave-one-out", user_ids=np.array([10, 20, 30]),
        train=[np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0, 2, 0])],
        valid_target=np.array(valid), test_target=np.array(test),
        extra_train=[np.array([3, 4])], skipped_users=0,
    )


def tiny_config(**settings):
    """The stage's config with the tiny neighbourhoods these two models are tested with."""
    return recommender_config({"itemknn_neighbours": 2, "markov_last": 2, "progress": False, **settings})


def context(config=None, **settings) -> FitContext:
    return FitContext(catalogue=Catalogue(np.arange(5)), embeddings=np.zeros((5, 4), np.float32),
                      sids=np.zeros((5, 3), np.int64), config=config or tiny_config(**settings))


def knn(**settings) -> ItemKNN:
    return ItemKNN.build(context(**settings)).fit(tiny_split())


def markov(**settings) -> Markov:
    return Markov.build(context(**settings)).fit(tiny_split())


# ------------------------------------------------------------------ item-kNN


def test_cosine_similarity_full():
    # S_ij = |U_i ∩ U_j| / sqrt(|U_i||U_j|): 0-1: 1/sqrt(2*2) = .5, 0-2: 2/sqrt(2*3), 1-2: 2/sqrt(2*3),
    # 1-3: 1/sqrt(2*2) = .5, 2-3: 1/sqrt(3*2), 3-4: 1/sqrt(2*1); the rest share no rater; diagonal 0
    expected = np.array([
        [0, 0.5, 2 * R6, 0, 0],
        [0.5, 0, 2 * R6, 0.5, 0],
        [2 * R6, 2 * R6, 0, R6, 0],
        [0, 0.5, R6, 0, 1 / np.sqrt(2)],
        [0, 0, 0, 1 / np.sqrt(2), 0],
    ])
    x = binary_user_items(tiny_split().training_sequences(), 5)
    np.testing.assert_array_equal(x.toarray()[2], [1, 0, 1, 0, 0])  # s2's re-rated 0 counts once
    np.testing.assert_allclose(item_cosine_topk(x, neighbours=5).toarray(), expected, rtol=1e-6)


def test_top_neighbours_pruning_breaks_ties_by_lower_index():
    # 2 neighbours per row: row 1 has .816 (item 2), then .5 for both 0 and 3 -> 0 (lower index) wins;
    # row 2 drops item 3 (1/sqrt6); row 3 drops item 2; row 4 has a single neighbour
    s = knn().similarity.toarray()
    assert (s > 0).sum(axis=1).tolist() == [2, 2, 2, 2, 1]
    np.testing.assert_array_equal(np.flatnonzero(s[1]), [0, 2])
    np.testing.assert_array_equal(np.flatnonzero(s[2]), [0, 1])
    np.testing.assert_array_equal(np.flatnonzero(s[3]), [1, 4])
    np.testing.assert_allclose(s[3, [1, 4]], [0.5, 1 / np.sqrt(2)], rtol=1e-6)


def test_cosine_blocks_match_one_block_and_brute_force():
    rng = np.random.default_rng(0)
    sequences = [rng.choice(12, rng.integers(1, 6), replace=False) for _ in range(40)]
    x = binary_user_items(sequences, 12)
    dense = x.toarray().astype(np.float64)
    full = dense.T @ dense / np.sqrt(np.outer(dense.sum(0), dense.sum(0)))
    np.fill_diagonal(full, 0)
    full = full.astype(np.float32)
    expected = np.zeros_like(full)
    for i, row in enumerate(full):  # a stable sort of -row: ties -> lower index, as the model does
        top = np.argsort(-row, kind="stable")[:3]
        top = top[row[top] > 0]
        expected[i, top] = row[top]
    one = item_cosine_topk(x, neighbours=3).toarray()
    np.testing.assert_allclose(one, expected, rtol=1e-6)
    np.testing.assert_array_equal(item_cosine_topk(x, neighbours=3, block_elements=12).toarray(), one)  # 1 row
    np.testing.assert_array_equal(item_cosine_topk(x, neighbours=3, block_elements=50).toarray(), one)  # 4 rows


def test_recency_weighting():
    # history [3, 0] (0 most recent), pruned rows S_0 = [0, .5, 2/sqrt6, 0, 0], S_3 = [0, .5, 0, 0, 1/sqrt2]
    # decay .5: 1 * S_0 + .5 * S_3 = [0, .75, .816, 0, .354] -> 2, 1, 4 (history excluded)
    # decay 1:  S_0 + S_3 = [0, 1, .816, 0, .707] -> 1, 2, 4: the older item counts fully
    ranking = knn(itemknn_decay=0.5).recommend([np.array([3, 0])], k=3)
    np.testing.assert_array_equal(ranking.items, [[2, 1, 4]])
    np.testing.assert_allclose(ranking.scores, [[2 * R6, 0.75, 0.5 / np.sqrt(2)]], rtol=1e-6)
    ranking = knn(itemknn_decay=1.0).recommend([np.array([3, 0])], k=3)
    np.testing.assert_array_equal(ranking.items, [[1, 2, 4]])
    np.testing.assert_allclose(ranking.scores, [[1.0, 2 * R6, 1 / np.sqrt(2)]], rtol=1e-6)


def test_repeated_item_counts_at_its_most_recent_position():
    # [0, 3, 0]: item 0 at age 0 (weight 1), item 3 at age 1 (.5) - the same weights as [3, 0]
    w = recency_weights([np.array([0, 3, 0])], 5, 0.5).toarray()
    np.testing.assert_allclose(w, [[1, 0, 0, 0.5, 0]])
    model = knn()
    a, b = model.recommend([np.array([0, 3, 0])], k=3), model.recommend([np.array([3, 0])], k=3)
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_popularity_backoff_orders_ties():
    # history [4]: S_4 = [0, 0, 0, .707, 0] -> 3 first, then score-0 items by popularity (3, 2, 3, 2, 1):
    # 0 and 2 (3 each, lower index first), then 1 (2). An empty history gets pure popularity order.
    model = knn()
    ranking = model.recommend([np.array([4]), np.array([], dtype=np.int64)], k=4)
    np.testing.assert_array_equal(ranking.items, [[3, 0, 2, 1], [0, 2, 1, 3]])
    np.testing.assert_allclose(ranking.scores[0], [1 / np.sqrt(2), 0, 0, 0], rtol=1e-6)
    np.testing.assert_array_equal(ranking.scores[1], [0, 0, 0, 0])


def test_exclusion():
    model = knn()
    histories = [np.array([0]), np.array([1, 2]), np.array([4])]
    ranking = model.recommend(histories, k=3)  # default: the history itself
    for history, items in zip(histories, ranking.items, strict=True):
        assert not set(history) & set(items)
    exclude = [np.array([2, 3]), np.array([]), np.array([0, 1])]
    ranking = model.recommend(histories, k=3, exclude=exclude)
    for excluded, items in zip(exclude, ranking.items, strict=True):
        assert not set(excluded.tolist()) & set(items.tolist())
    # [0] without 2, 3: S_0 = [0, .5, .816, 0, 0] -> 1, then the zeros 0 (popularity 3) and 4;
    # [1, 2] may get its own items: S_2 + .5 S_1 = [.816 + .25, .816, .408, 0, 0] -> 0, 1, 2;
    # [4] without 0, 1: S_4 = [0, 0, 0, .707, 0] -> 3, then 2 and 4 by popularity
    np.testing.assert_array_equal(ranking.items, [[1, 0, 4], [0, 1, 2], [3, 2, 4]])
    with pytest.raises(ValueError, match="fewer than k"):
        model.recommend([np.array([0, 1, 2])], k=3)
    with pytest.raises(ValueError, match="exclusion lists"):
        model.recommend(histories, k=2, exclude=exclude[:2])


def test_topk_ranked_matches_stable_sort():
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 3, (30, 9)).astype(np.float32) / 2  # many ties, at 0 and above
    exclude = [rng.choice(9, rng.integers(0, 4), replace=False) for _ in range(30)]
    items, top = topk_ranked(scores, np.arange(9), exclude, k=5)  # rank = index: the baselines' rule
    expected_items, expected_top = topk_excluding(scores, exclude, k=5)
    np.testing.assert_array_equal(items, expected_items)
    np.testing.assert_array_equal(top, expected_top)
    # random ranks, ties at 0 and above, exclusions, k up to everything left: a full lexicographic sort
    for _ in range(200):
        rows, n = rng.integers(1, 5), rng.integers(1, 25)
        k = int(rng.integers(1, n + 1))
        scores = (rng.integers(0, 3, (rows, n)) * (rng.random((rows, n)) < rng.random())).astype(np.float32)
        rank = rng.permutation(n)
        exclude = [rng.choice(n, rng.integers(0, n - k + 1), replace=False) for _ in range(rows)]
        items, _ = topk_ranked(scores, rank, exclude, k)
        for row, excluded, got in zip(scores, exclude, items, strict=True):
            masked = np.where(np.isin(np.arange(n), excluded), -np.inf, row)
            np.testing.assert_array_equal(got, np.lexsort((rank, -masked))[:k])
    # a popularity rank decides between equal scores before the item index does
    rank = np.array([8, 7, 6, 5, 4, 3, 2, 1, 0])  # the last item is the most popular
    items, _ = topk_ranked(np.zeros((1, 9), np.float32), rank, [np.array([8])], k=3)
    np.testing.assert_array_equal(items, [[7, 6, 5]])


# ------------------------------------------------------------------ Markov


def test_markov_transition_probabilities():
    # pairs: s0 0->1, 1->2; s1 1->2, 2->3; s2 0->2, 2->0; s3 3->4. s0's end (2) does not pair with s1's
    # start (1): P[2, 1] = 0. Row 4 has no outgoing transition and stays empty.
    model = markov()
    np.testing.assert_array_equal(model.counts.toarray(), [
        [0, 1, 1, 0, 0], [0, 0, 2, 0, 0], [1, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    np.testing.assert_allclose(model.transitions.toarray(), [
        [0, 0.5, 0.5, 0, 0], [0, 0, 1, 0, 0], [0.5, 0, 0, 0.5, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])


def test_markov_multi_item_decay():
    # history [2, 0], all items allowed: last=2, decay .5: P_0 + .5 P_2 = [.25, .5, .5, .25, 0]
    #   -> 1 and 2 tie at .5 (popularity 2 < 3: item 2 first), 0 and 3 at .25 (0 first), then 4
    # decay 1: P_0 + P_2 = [.5, .5, .5, .5, 0] -> popularity order 0, 2, 1, 3, then 4
    # last=1: P_0 = [0, .5, .5, 0, 0] -> 2, 1, then the zeros by popularity 0, 3, 4
    everything = [np.array([], dtype=np.int64)]
    ranking = markov().recommend([np.array([2, 0])], k=5, exclude=everything)
    np.testing.assert_array_equal(ranking.items, [[2, 1, 0, 3, 4]])
    np.testing.assert_allclose(ranking.scores, [[0.5, 0.5, 0.25, 0.25, 0]])
    ranking = markov(markov_decay=1.0).recommend([np.array([2, 0])], k=5, exclude=everything)
    np.testing.assert_array_equal(ranking.items, [[0, 2, 1, 3, 4]])
    np.testing.assert_allclose(ranking.scores, [[0.5, 0.5, 0.5, 0.5, 0]])
    ranking = markov(markov_last=1).recommend([np.array([2, 0])], k=5, exclude=everything)
    np.testing.assert_array_equal(ranking.items, [[2, 1, 0, 3, 4]])
    np.testing.assert_allclose(ranking.scores, [[0.5, 0.5, 0, 0, 0]])


def test_markov_backoff_and_default_exclusion():
    # history [3, 4]: P_4 empty, .5 P_3 = [0, 0, 0, 0, .5] but 4 is excluded -> only zeros remain:
    # popularity order without 3 and 4: 0, 2, 1. Repeats among the last items add up: [1, 1] with
    # last=2, decay .5 gives 1.5 * P_1 = 1.5 on item 2.
    model = markov()
    ranking = model.recommend([np.array([3, 4]), np.array([1, 1])], k=3)
    np.testing.assert_array_equal(ranking.items, [[0, 2, 1], [2, 0, 3]])
    np.testing.assert_allclose(ranking.scores, [[0, 0, 0], [1.5, 0, 0]])


# ------------------------------------------------------------------ both


@pytest.mark.parametrize("build", [knn, markov])
def test_save_load_same_rankings(build, tmp_path):
    model = build()
    histories = [np.array([0]), np.array([3, 0]), np.array([1, 2, 3]), np.array([], dtype=np.int64)]
    before = model.recommend(histories, k=2)
    model.save(tmp_path / "model")
    assert (tmp_path / "model" / "model.safetensors").exists()
    # the saved settings win over the loading context's (decay 1 would rank [3, 0] differently)
    loaded = type(model).load(tmp_path / "model", context(itemknn_decay=1.0, markov_decay=1.0))
    after = loaded.recommend(histories, k=2)
    np.testing.assert_array_equal(before.items, after.items)
    np.testing.assert_array_equal(before.scores, after.scores)


@pytest.mark.parametrize(("cls", "learned"), [(ItemKNN, "similarity"), (Markov, "counts")])
def test_fit_ignores_held_out_targets(cls, learned):
    a = cls.build(context()).fit(tiny_split())
    b = cls.build(context()).fit(tiny_split(valid=(4, 0, 4), test=(0, 1, 2)))
    np.testing.assert_array_equal(getattr(a, learned).toarray(), getattr(b, learned).toarray())
    np.testing.assert_array_equal(a.popularity, b.popularity)


def test_saved_settings_and_bad_settings():
    bare = context()
    assert Markov(bare).saved_settings() == {"split": "leave-one-out", "markov_last": 2, "markov_decay": 0.5}
    with pytest.raises(ValueError, match="decay"):
        ItemKNN(context(itemknn_decay=0.0))
    with pytest.raises(ValueError, match="last"):
        Markov(context(markov_last=0))
    with pytest.raises(RuntimeError, match="fit"):
        ItemKNN(bare).recommend([np.array([0])], k=1)


def test_reasons():
    run = types.SimpleNamespace(movies=pd.DataFrame({"title": [f"Movie {i}" for i in range(5)]}))
    # item 2 for history [3, 0]: contributions 1 * S_02 = .816 and .5 * S_32 = 0 (pruned) -> Movie 0
    assert knn().reason(2, 0.816, np.array([3, 0]), run) == (
        "item-kNN score 0.816; most similar in your history: Movie 0 (cosine 0.82)")
    assert "most popular (3 training ratings)" in knn().reason(0, 0.0, np.array([4]), run)
    # item 3 after [1, 2]: P_23 = .5 (1 time), P_13 = 0
    assert markov().reason(3, 0.5, np.array([1, 2]), run) == (
        "followed Movie 2 1 time(s) in the training sequences (p = 0.50)")
    assert "most popular" in markov().reason(0, 0.0, np.array([4]), run)
