"""Non-learned baselines: most-popular and content (embedding) nearest neighbours.

Both recommend, for every evaluated user of a `SequenceSplit`, the top K items that are not in the
user's input history for the stage (`valid_inputs(u)` or `test_inputs(u)`): a user has already rated
those, so recommending them again is neither useful nor counted as a hit by the metrics.

- popularity: score(i) = number of times item i occurs in the training sequences (never the held-out
  validation/test targets, which would leak the answer).
- content: the user vector is a recency-weighted mean of the embeddings of the last `max_len` history
  items, scored against every item with an inner product (cosine, as embeddings are L2-normalised).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    import faiss

from recsys.data.splits import HeldOut, SequenceSplit, stage_inputs

# The content baseline's recency decay: its best validation NDCG@10 on ML-100K
# (bench/results/tune-simple-ml-100k.json, `bench/tune_simple_baselines.py`); the next movie resembles the last few.
DEFAULT_DECAY = 0.2
DEFAULT_MAX_LEN = 50
INDEX_KINDS = ("flat", "hnsw")
HNSW_NEIGHBOURS = 32  # graph degree M
HNSW_EF_SEARCH = 128  # candidates kept while searching: recall against speed


def popularity_scores(split: SequenceSplit, catalogue_size: int) -> np.ndarray:
    """(N,) int64: count(i) = occurrences of item i in split.training_sequences() (training counts only)."""
    items = np.concatenate([np.empty(0, dtype=np.int64), *split.training_sequences()]).astype(np.int64)
    if len(items) and (items.min() < 0 or items.max() >= catalogue_size):
        raise ValueError(f"training sequences hold item indices outside 0..{catalogue_size - 1}")
    return np.bincount(items, minlength=catalogue_size).astype(np.int64)


def content_user_vectors(
    histories: list[np.ndarray], embeddings: np.ndarray, decay: float = DEFAULT_DECAY,
    max_len: int = DEFAULT_MAX_LEN,
) -> np.ndarray:
    """(U, D) float32 user vectors from their histories (item indices, oldest first).

        v_u = sum_j decay**age_j * e_{h_j} / sum_j decay**age_j,   u_vec = v_u / ||v_u||

    over the last `max_len` items h_j of the history, with age 0 for the most recent item. decay = 1
    is a plain mean; smaller decay leans towards what the user watched last.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (items, dim), got shape {embeddings.shape}")
    recent = [np.asarray(h, dtype=np.int64)[-max_len:] for h in histories]
    if any(len(h) == 0 for h in recent):
        raise ValueError("every user needs at least one history item for a content vector")
    lengths = np.array([len(h) for h in recent], dtype=np.int64)
    items = np.concatenate([np.empty(0, dtype=np.int64), *recent])
    rows = np.repeat(np.arange(len(recent)), lengths)
    # age = distance from the end of each user's (truncated) history
    ages = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(items)) - 1
    weights = decay ** ages.astype(np.float64)
    weights /= np.bincount(rows, weights=weights, minlength=len(recent))[rows]
    # a sparse (U, N) weight matrix turns the weighted sums into one product, without a (U, L, D) tensor
    w = sp.csr_matrix((weights, (rows, items)), shape=(len(recent), embeddings.shape[0]))
    vectors = np.asarray(w @ embeddings.astype(np.float64))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


def _exclusion_codes(exclude: list[np.ndarray], width: int) -> np.ndarray:
    """Encode (user, item) exclusion pairs as user * width + item, for one vectorised np.isin."""
    lengths = np.array([len(e) for e in exclude], dtype=np.int64)
    items = np.concatenate([np.empty(0, dtype=np.int64), *exclude]).astype(np.int64)
    # an out-of-range item would silently land in the next user's code range
    if len(items) and (items.min() < 0 or items.max() >= width):
        raise ValueError(f"exclusions hold item indices outside 0..{width - 1}")
    return np.repeat(np.arange(len(exclude), dtype=np.int64), lengths) * width + items


def faiss_topk_excluding(
    queries: np.ndarray, index: faiss.Index, exclude: list[np.ndarray], k: int, batch_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k index items per query, skipping each user's excluded items, in the index's rank order.

    Searches depth = min(k + max |exclude_u|, ntotal) per batch: at most |exclude_u| of the top depth
    results can be excluded, so k real items always remain when the catalogue is large enough. Users go
    in batches of similar history length, so that one 10,000-movie history does not make every user's
    search that deep (at ML-32M's size that would be tens of GB). Returns items (U, k) int64 and scores
    (U, k) float32.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != index.d:
        raise ValueError(f"queries must be (users, {index.d}), got shape {queries.shape}")
    if len(exclude) != len(queries):
        raise ValueError(f"{len(queries)} queries but {len(exclude)} exclusion lists")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    items = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    by_length = np.argsort([len(e) for e in exclude], kind="stable")
    for start in range(0, len(queries), batch_size):
        rows = by_length[start:start + batch_size]
        items[rows], scores[rows] = _search_excluding(queries[rows], index, [exclude[r] for r in rows], k, rows)
    return items, scores


def _search_excluding(queries: np.ndarray, index: faiss.Index, exclude: list[np.ndarray], k: int,
                      rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """faiss_topk_excluding for one batch; `rows` are the batch's row numbers, for error messages."""
    depth = min(k + max((len(e) for e in exclude), default=0), index.ntotal)
    scores, items = index.search(queries, depth)
    local = np.arange(len(queries), dtype=np.int64)[:, None]
    # faiss pads with -1 when it has fewer than depth results
    keep = (items >= 0) & ~np.isin(local * index.ntotal + items, _exclusion_codes(exclude, index.ntotal))
    short = np.flatnonzero(keep.sum(axis=1) < k)
    if len(short):
        raise ValueError(
            f"fewer than k={k} items left for user row {rows[short[0]]} after exclusions "
            f"(index holds {index.ntotal}, searched {depth})"
        )
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept columns first, rank order preserved
    return np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1)


def topk_excluding(
    scores: np.ndarray, exclude: list[np.ndarray], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items per user from dense scores (U, N), or (N,) shared by all users, skipping exclusions.

    Excluded items get -inf; the rest are sorted by (-score, item index), so ties go to the lower index.
    Returns items (U, k) int64 and scores (U, k) float32.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim == 1:
        scores = np.broadcast_to(scores, (len(exclude), scores.shape[0]))
    if scores.ndim != 2 or scores.shape[0] != len(exclude):
        raise ValueError(f"scores must be (N,) or ({len(exclude)}, N), got shape {scores.shape}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_users, n_items = scores.shape
    excluded = np.zeros((n_users, n_items), dtype=bool)
    codes = _exclusion_codes(exclude, n_items)
    excluded.flat[codes] = True
    if ((~excluded).sum(axis=1) < k).any():
        raise ValueError(f"k={k} but some user has fewer than k of {n_items} items left after exclusions")
    masked = np.where(excluded, -np.inf, scores)
    # argpartition picks an arbitrary member among ties at the k-th place; a stable sort of -score keeps
    # equal scores in item-index order, which makes the top k reproducible across numpy versions.
    items = np.argsort(-masked, axis=1, kind="stable")[:, :k]
    return items.astype(np.int64), np.take_along_axis(masked, items, axis=1).astype(np.float32)


def popularity_recommend(
    split: SequenceSplit, catalogue_size: int, stage: HeldOut, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Most-popular training items not in each user's stage inputs: items (U, k), scores (counts) (U, k)."""
    return topk_excluding(popularity_scores(split, catalogue_size), stage_inputs(split, stage), k)


def build_index(embeddings: np.ndarray, kind: str = "flat") -> faiss.Index:
    """An inner-product index over the rows of embeddings: "flat" (exact) or "hnsw" (approximate, graph).

    HNSW answers a query in roughly log(N) distance computations instead of N; bench/scale_ml32m.py
    measures its speed and its recall@K against flat at ML-32M's 87,585 movies.
    """
    import faiss  # here, so that importing a model (to load it, to rank without FAISS) does not load faiss

    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown FAISS index {kind!r}; choose one of {INDEX_KINDS}")
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if kind == "flat":
        index = faiss.IndexFlatIP(embeddings.shape[1])
    else:
        index = faiss.IndexHNSWFlat(embeddings.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(embeddings)
    return index


def content_recommend(
    split: SequenceSplit, embeddings: np.ndarray, stage: HeldOut, k: int,
    decay: float = DEFAULT_DECAY, max_len: int = DEFAULT_MAX_LEN, index: str = "flat",
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest items (inner product over all N items, `build_index(kind=index)`) to each user's content vector."""
    inputs = stage_inputs(split, stage)
    queries = content_user_vectors(inputs, embeddings, decay=decay, max_len=max_len)
    return faiss_topk_excluding(queries, build_index(embeddings, index), inputs, k)
