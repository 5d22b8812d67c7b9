"""Top-K ranking metrics for one held-out target per user.

With a single relevant item per user (leave-one-out, or the first rating after a temporal cut):

    recall@K = 1[rank <= K]
    NDCG@K   = 1 / log2(rank + 1)  if rank <= K else 0      (rank is 1-based; IDCG = 1 for one target)

so recall@K equals hit-rate@K. Per-user values come back as arrays; `ranking_metrics` averages them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _check(ranked: np.ndarray, targets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ranked, targets = np.asarray(ranked), np.asarray(targets)
    if ranked.ndim != 2:
        raise ValueError(f"ranked must be a (users, K) array, got shape {ranked.shape}")
    if targets.ndim != 1:
        raise ValueError(f"targets must be a (users,) array, got shape {targets.shape}")
    if ranked.shape[0] != targets.shape[0]:
        raise ValueError(f"ranked has {ranked.shape[0]} users but targets has {targets.shape[0]}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if ranked.shape[1] < k:
        raise ValueError(f"k={k} but only {ranked.shape[1]} items are ranked per user")
    return ranked, targets


def target_rank(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """1-based position of each user's target within ranked[:, :k]; 0 where it is not there."""
    ranked, targets = _check(ranked, targets, k)
    hits = ranked[:, :k] == targets[:, None]
    # argmax finds the first hit; rows without one would also give 0, so they are masked by any().
    return np.where(hits.any(axis=1), hits.argmax(axis=1) + 1, 0)


def recall_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per-user recall@k = 1[target in ranked[:k]], as float64 of shape (users,): with one held-out item
    per user this is the hit rate@k (what the field often reports as HR@k)."""
    return (target_rank(ranked, targets, k) > 0).astype(np.float64)


def ndcg_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k = 1 / log2(rank + 1) if the target's 1-based rank <= k else 0 (IDCG = 1)."""
    rank = target_rank(ranked, targets, k)
    gain = np.zeros(rank.shape, dtype=np.float64)
    hit = rank > 0
    gain[hit] = 1.0 / np.log2(rank[hit] + 1.0)
    return gain


def ranking_metrics(
    ranked: np.ndarray, targets: np.ndarray, ks: Sequence[int] = (5, 10, 20)
) -> dict[str, float]:
    """Mean recall@k and NDCG@k over users for each k: {"recall@5": ..., "ndcg@5": ..., "recall@10": ...}."""
    if len(np.asarray(targets)) == 0:
        raise ValueError("no users to evaluate")
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = float(recall_at_k(ranked, targets, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at_k(ranked, targets, k).mean())
    return out
