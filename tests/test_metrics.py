"""Ranking metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.evaluation.metrics import ndcg_at_k, ranking_metrics, recall_at_k

# three users; targets sit at rank 1, rank 3 and nowhere in the top 4
RANKED = np.array([[7, 1, 2, 3], [4, 5, 9, 6], [1, 2, 3, 4]])
TARGETS = np.array([7, 9, 8])


def test_recall_hand_computed():
    np.testing.assert_array_equal(recall_at_k(RANKED, TARGETS, 1), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(recall_at_k(RANKED, TARGETS, 2), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(recall_at_k(RANKED, TARGETS, 3), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(recall_at_k(RANKED, TARGETS, 4), [1.0, 1.0, 0.0])


def test_ndcg_hand_computed():
    # rank 1 -> 1/log2(2) = 1; rank 3 -> 1/log2(4) = 0.5; absent -> 0
    np.testing.assert_allclose(ndcg_at_k(RANKED, TARGETS, 4), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(ndcg_at_k(RANKED, TARGETS, 2), [1.0, 0.0, 0.0])


def test_k_bound_is_inclusive():
    ranked, target = np.array([[0, 1, 2, 3, 4]]), np.array([4])
    assert recall_at_k(ranked, target, 4)[0] == 0.0
    assert recall_at_k(ranked, target, 5)[0] == 1.0
    assert ndcg_at_k(ranked, target, 5)[0] == pytest.approx(1 / np.log2(6))


def test_ranking_metrics_means_and_keys():
    out = ranking_metrics(RANKED, TARGETS, ks=(1, 3))
    assert list(out) == ["recall@1", "ndcg@1", "recall@3", "ndcg@3"]
    assert out["recall@1"] == pytest.approx(1 / 3)
    assert out["recall@3"] == pytest.approx(2 / 3)
    assert out["ndcg@3"] == pytest.approx((1.0 + 0.5) / 3)
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize(
    ("ranked", "targets", "k", "message"),
    [
        (np.array([1, 2, 3]), np.array([1]), 1, "ranked must be"),
        (RANKED, TARGETS[:, None], 1, "targets must be"),
        (RANKED, TARGETS[:2], 1, "3 users but targets has 2"),
        (RANKED, TARGETS, 5, "only 4 items"),
        (RANKED, TARGETS, 0, "positive integer"),
    ],
)
def test_shape_errors(ranked, targets, k, message):
    with pytest.raises(ValueError, match=message):
        recall_at_k(ranked, targets, k)
    with pytest.raises(ValueError, match=message):
        ndcg_at_k(ranked, targets, k)


def test_no_users_is_an_error():
    with pytest.raises(ValueError, match="no users"):
        ranking_metrics(np.empty((0, 20), dtype=np.int64), np.empty(0, dtype=np.int64))
