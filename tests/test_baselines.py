"""Popularity and content baselines on tiny hand-made cases."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from recsys.data.splits import SequenceSplit, stage_inputs
from recsys.models.ranking import (
    content_recommend,
    content_user_vectors,
    faiss_topk_excluding,
    popularity_recommend,
    popularity_scores,
    topk_excluding,
)


def tiny_split() -> SequenceSplit:
    """Two users over 6 items; item 5 only ever appears as a held-out target."""
    return SequenceSplit(
        name="leave-one-out", user_ids=np.array([10, 20]),
        train=[np.array([0, 1, 2]), np.array([1, 2])],
        valid_target=np.array([3, 0]), test_target=np.array([5, 5]),
        extra_train=[np.array([2, 4])], skipped_users=0,
    )


def test_popularity_counts_training_only():
    # targets (3, 0, 5, 5) are not counted; extra_train is
    np.testing.assert_array_equal(popularity_scores(tiny_split(), 6), [1, 2, 3, 0, 1, 0])


def test_popularity_rejects_items_outside_catalogue():
    with pytest.raises(ValueError, match="outside"):
        popularity_scores(tiny_split(), 3)


def test_popularity_recommend_excludes_stage_inputs():
    split = tiny_split()
    items, scores = popularity_recommend(split, 6, "valid", k=2)
    # user 10 saw 0,1,2 -> left: 4 (count 1), then 3 and 5 (count 0; tie -> lower index)
    np.testing.assert_array_equal(items, [[4, 3], [0, 4]])
    np.testing.assert_array_equal(scores, [[1, 0], [1, 1]])
    test_items, _ = popularity_recommend(split, 6, "test", k=2)
    assert 3 not in test_items[0] and 0 not in test_items[1]  # the valid target is a test input
    with pytest.raises(ValueError, match="unknown stage"):
        stage_inputs(split, "train")


def test_topk_ties_broken_by_item_index():
    scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
    items, top = topk_excluding(scores, [np.array([], dtype=np.int64), np.array([2])], k=3)
    np.testing.assert_array_equal(items, [[1, 2, 4], [1, 4, 3]])
    np.testing.assert_array_equal(top, [[3, 3, 3], [3, 3, 2]])


def test_topk_dense_per_user_scores_and_errors():
    scores = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    items, _ = topk_excluding(scores, [np.array([1]), np.array([])], k=2)
    np.testing.assert_array_equal(items, [[2, 0], [0, 2]])
    with pytest.raises(ValueError, match="fewer than k"):
        topk_excluding(scores, [np.array([0, 1]), np.array([])], k=2)
    with pytest.raises(ValueError, match="outside"):
        topk_excluding(scores, [np.array([3]), np.array([])], k=1)


def test_content_vector_formula():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32) / np.array([[1], [1], [2**0.5]])
    # history 0 then 1 (1 most recent): v = (0.5 * e0 + 1 * e1) / 1.5 -> direction (0.5, 1)
    got = content_user_vectors([np.array([0, 1])], emb, decay=0.5)
    np.testing.assert_allclose(got[0], np.array([0.5, 1.0]) / np.hypot(0.5, 1.0), rtol=1e-6)
    # decay 1 is the plain mean; max_len keeps only the most recent items
    np.testing.assert_allclose(content_user_vectors([np.array([0, 1])], emb, decay=1.0)[0], [2**-0.5] * 2)
    np.testing.assert_allclose(content_user_vectors([np.array([0, 1])], emb, max_len=1)[0], [0.0, 1.0])
    with pytest.raises(ValueError, match="at least one"):
        content_user_vectors([np.array([], dtype=np.int64)], emb)
    with pytest.raises(ValueError, match="decay"):
        content_user_vectors([np.array([0])], emb, decay=0.0)


def test_content_vectors_match_a_loop(rng):
    emb = rng.normal(size=(30, 8)).astype(np.float32)
    histories = [rng.choice(30, size=n, replace=False) for n in (1, 5, 20)]
    got = content_user_vectors(histories, emb, decay=0.7, max_len=12)
    for h, vec in zip(histories, got, strict=True):
        last = h[-12:]
        w = 0.7 ** np.arange(len(last))[::-1]
        expected = (w[:, None] * emb[last]).sum(0)
        np.testing.assert_allclose(vec, expected / np.linalg.norm(expected), rtol=1e-5, atol=1e-6)


def test_faiss_exclusion_returns_k_unseen_items_in_rank_order(rng):
    emb = rng.normal(size=(50, 16)).astype(np.float32)
    index = faiss.IndexFlatIP(16)
    index.add(emb)
    queries = rng.normal(size=(4, 16)).astype(np.float32)
    exclude = [rng.choice(50, size=n, replace=False) for n in (0, 3, 10, 40)]
    items, scores = faiss_topk_excluding(queries, index, exclude, k=10)
    assert items.shape == (4, 10) and items.dtype == np.int64 and scores.dtype == np.float32
    full = queries @ emb.T
    for u in range(4):
        assert not np.isin(items[u], exclude[u]).any() and len(set(items[u])) == 10
        allowed = np.setdiff1d(np.arange(50), exclude[u])
        expected = allowed[np.argsort(-full[u, allowed], kind="stable")[:10]]
        np.testing.assert_array_equal(items[u], expected)
        np.testing.assert_allclose(scores[u], full[u, items[u]], rtol=1e-5)
    with pytest.raises(ValueError, match="fewer than k"):
        faiss_topk_excluding(queries[:1], index, [np.arange(45)], k=10)


def test_content_recommend_never_returns_history(rng):
    split = tiny_split()
    emb = rng.normal(size=(6, 4))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    for stage in ("valid", "test"):
        items, _ = content_recommend(split, emb, stage, k=2)
        for u, history in enumerate(stage_inputs(split, stage)):
            assert not np.isin(items[u], history).any()


def test_hnsw_index_finds_what_flat_finds(rng):
    from recsys.models.ranking import build_index

    items = rng.normal(size=(2000, 32)).astype(np.float32)
    items /= np.linalg.norm(items, axis=1, keepdims=True)
    queries = items[:100] + 0.05 * rng.normal(size=(100, 32)).astype(np.float32)
    _, flat = build_index(items, "flat").search(queries, 10)
    _, hnsw = build_index(items, "hnsw").search(queries, 10)
    assert (flat[:, 0] == np.arange(100)).all()  # each query's own item is its nearest
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(flat, hnsw, strict=True)])
    assert recall > 0.9
    with pytest.raises(ValueError, match="unknown FAISS index 'ivf'"):
        build_index(items, "ivf")


def test_faiss_search_in_batches_of_similar_history_length_changes_nothing(rng):
    from recsys.models.ranking import build_index

    items = rng.normal(size=(300, 8)).astype(np.float32)
    queries = rng.normal(size=(25, 8)).astype(np.float32)
    exclude = [rng.choice(300, int(n), replace=False) for n in rng.integers(0, 120, 25)]
    whole = faiss_topk_excluding(queries, build_index(items), exclude, k=10, batch_size=1000)
    batched = faiss_topk_excluding(queries, build_index(items), exclude, k=10, batch_size=3)
    np.testing.assert_array_equal(whole[0], batched[0])
    np.testing.assert_array_equal(whole[1], batched[1])
    assert not any(np.isin(row, ex).any() for row, ex in zip(whole[0], exclude, strict=True))
