"""Item-based k-nearest neighbours: item-item cosine over who rated what, summed over a user's history.

    X_ui = 1 if user u rated item i in the training sequences (a re-rated item counts once)   (U, N)
    S_ij = |U_i ∩ U_j| / sqrt(|U_i| |U_j|)  = (X^T X)_ij / sqrt(n_i n_j),  S_ii = 0,
           then only each row's `neighbours` largest entries are kept (ties -> lower item index)
    score_u(i) = sum_{j in history} w_j S_ji,   w_j = decay**age_j   (age 0 = the most recent item;
                 a repeated item counts once, at its most recent position, as in X)

Ranking (shared with `recsys.models.markov`): items are ordered by (score desc, training popularity desc,
item index asc) - an exact lexicographic order, not an epsilon added to the score. A user whose history
has no neighbour (all scores 0) therefore gets the most popular unseen items, exactly as the popularity
baseline ranks them, and popularity only ever decides between equal scores. The returned scores are the
model's own (the kNN sum), without any popularity term.

Memory: X^T X is never formed. Rows of S are computed in blocks of items, one sparse product
X^T[block] @ X per block, densified to (B, N) float32 for the top-k cut and then dropped; only the
pruned (N, neighbours) entries are kept. At ML-32M's size (87,585 items) a block is ~766 rows (256 MB).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from recsys.data.splits import SequenceSplit
from recsys.models.base import FitContext, Ranking, Recommender, default_exclude
from recsys.models.ranking import popularity_scores
from rqsid.settings import require_decay, require_positive_int

BLOCK_ELEMENTS = 2**26  # dense (B, N) float32 cells per block of S's rows (and per user batch): 256 MB
WEIGHTS_FILE = "model.safetensors"


def binary_user_items(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """(U, N) float32 csr: X_ui = 1 if item i occurs in sequence u (repeats count once)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    items = np.concatenate([np.empty(0, dtype=np.int32), *sequences]).astype(np.int32)
    rows = np.repeat(np.arange(len(sequences), dtype=np.int32), lengths)
    x = sp.csr_matrix((np.ones(len(items), dtype=np.float32), (rows, items)), shape=(len(sequences), n_items))
    x.data[:] = 1.0  # duplicates were summed by the conversion
    return x


def topk_tiebroken(values: np.ndarray, k: int, rank: np.ndarray, most_excluded: int = 0) -> np.ndarray:
    """(B, k) columns of each row's k largest values, ordered by (value desc, rank asc).

    values: (B, N) float32, each >= 0 or -inf (at most `most_excluded` -inf per row); rank: (N,) distinct
    tie-break ranks (0 first). torch.topk finds the k largest fast (numpy's partition is ~15x slower on
    rows full of equal zeros) but picks arbitrarily among equal values, so where the k-th value also
    occurs outside its pick ("crowded" rows), the tied places are refilled with the tied columns of
    lowest rank (`_lowest_rank_ties`).
    """
    import torch

    top_values, top_cols = (t.numpy() for t in torch.topk(torch.from_numpy(values), k, dim=1))  # (B, k)
    level = top_values[:, -1]  # (B,) the k-th largest value
    tied_in_top = (top_values == level[:, None]).sum(axis=1)  # the last places of each row, as top is sorted
    tied = values == level[:, None]  # (B, N)
    crowded = np.flatnonzero(tied.sum(axis=1) > tied_in_top)
    if len(crowded):
        rows, places, cols = _lowest_rank_ties(tied, crowded, level[crowded] == 0, tied_in_top[crowded],
                                               k + most_excluded, rank)
        top_cols[rows, k - tied_in_top[rows] + places] = cols
    order = np.lexsort((rank[top_cols], -top_values), axis=1)
    return np.take_along_axis(top_cols, order, axis=1).astype(np.int64)


def _lowest_rank_ties(tied: np.ndarray, rows: np.ndarray, zero: np.ndarray, need: np.ndarray, prefix: int,
                      rank: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row r of `rows`: the need_r tied columns (tied[r]) of lowest rank, as (row, place, column).
    zero[r]: whether row r's tied value is 0.

    A positive tied value is rare within a row: its columns are found directly. A tied 0 is usually most
    of the row (every unscored item), but the first k + (number of -inf) = `prefix` columns in rank
    order hold at least need_r zeros (at most k - need_r values lie above 0): that prefix suffices.
    """
    picked = []
    if zero.any():
        r = rows[zero]
        first = np.argsort(rank, kind="stable")[:min(prefix, len(rank))]
        hit = tied[np.ix_(r, first)]  # (R, L), columns in rank order
        hit &= np.cumsum(hit, axis=1, dtype=np.int32) <= need[zero, None]
        i, j = np.nonzero(hit)  # row-major: rank order within a row
        picked.append((r[i], _position_in_run(i), first[j]))
    if (~zero).any():
        r = rows[~zero]
        i, c = np.nonzero(tied[r])
        order = np.lexsort((rank[c], i))
        i, c = i[order], c[order]
        place = _position_in_run(i)
        keep = place < need[~zero][i]
        picked.append((r[i[keep]], place[keep], c[keep]))
    return tuple(np.concatenate(parts) for parts in zip(*picked, strict=True))


def _position_in_run(keys: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal consecutive keys."""
    if len(keys) == 0:
        return np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return np.arange(len(keys)) - np.repeat(starts, np.diff(np.r_[starts, len(keys)]))


def row_topk(dense: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of each row's k largest positive entries of a (B, N) array >= 0; ties -> lower column.

    Zeros are never kept, so a row may keep fewer than k.
    """
    cols = topk_tiebroken(dense, min(k, dense.shape[1]), np.arange(dense.shape[1]))
    rows = np.repeat(np.arange(len(dense)), cols.shape[1])
    keep = dense[rows, cols.ravel()] > 0
    return rows[keep], cols.ravel()[keep]


def item_cosine_topk(x: sp.csr_matrix, neighbours: int, block_elements: int = BLOCK_ELEMENTS) -> sp.csr_matrix:
    """(N, N) float32 csr S: cosine between item columns of binary X, diagonal 0, top `neighbours` per row.

        S_ij = (X^T X)_ij / sqrt(n_i n_j),  n_i = sum_u X_ui

    computed in blocks of rows (at most block_elements dense cells each), never as a dense N x N.
    """
    if neighbours < 1:
        raise ValueError(f"neighbours must be >= 1, got {neighbours}")
    n = x.shape[1]
    counts = np.asarray(x.sum(axis=0), dtype=np.float64).ravel()  # (N,) n_i
    inv_sqrt = np.zeros(n, dtype=np.float32)
    inv_sqrt[counts > 0] = 1.0 / np.sqrt(counts[counts > 0])
    xt = x.T.tocsr()  # (N, U): row slices of X^T are the blocks' left factors
    block = max(1, block_elements // max(n, 1))
    rows, cols, values = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        dense = (xt[start:stop] @ x).toarray()  # (B, N) co-occurrence counts, exact in float32 below 2**24
        dense *= inv_sqrt[start:stop, None]
        dense *= inv_sqrt[None, :]
        dense[np.arange(stop - start), np.arange(start, stop)] = 0.0  # an item is not its own neighbour
        r, c = row_topk(dense, neighbours)
        rows.append(r.astype(np.int32) + start)
        cols.append(c.astype(np.int32))
        values.append(dense[r, c])
        del dense
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.concatenate(values), (rows_all, cols_all)), shape=(n, n), dtype=np.float32)


def recency_weights(histories: list[np.ndarray], n_items: int, decay: float, last: int | None = None,
                    repeats: Literal["latest", "sum"] = "latest") -> sp.csr_matrix:
    """(B, N) float32 csr of history weights w_ui = decay**age (age 0 = the most recent item).

    Only the last `last` items count (all when None). A repeated item counts once at its most recent
    position ("latest") or with its weights summed ("sum"). Weights that underflow float32 are dropped.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    start = -last if last is not None else 0
    recent = [np.asarray(h, dtype=np.int64)[start:] for h in histories]
    lengths = np.array([len(h) for h in recent], dtype=np.int64)
    items = np.concatenate([np.empty(0, dtype=np.int64), *recent])
    rows = np.repeat(np.arange(len(recent), dtype=np.int64), lengths)
    ages = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(items)) - 1
    if repeats == "latest":
        codes = rows * n_items + items
        order = np.lexsort((ages, codes))  # each (user, item) run starts with its youngest occurrence
        first = np.ones(len(order), dtype=bool)
        first[1:] = codes[order][1:] != codes[order][:-1]
        pick = order[first]
        rows, items, ages = rows[pick], items[pick], ages[pick]
    weights = (decay ** ages.astype(np.float64)).astype(np.float32)
    w = sp.csr_matrix((weights, (rows, items)), shape=(len(recent), n_items))  # "sum": duplicates add up
    w.eliminate_zeros()
    return w


def popularity_rank(popularity: np.ndarray) -> np.ndarray:
    """(N,) int64 rank of each item in the order (popularity desc, item index asc); 0 = most popular."""
    order = np.lexsort((np.arange(len(popularity)), -np.asarray(popularity, dtype=np.int64)))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def topk_ranked(scores: np.ndarray, rank: np.ndarray, exclude: list[np.ndarray], k: int, *, copy: bool = True
                ) -> tuple[np.ndarray, np.ndarray]:
    """Top-k per row of (B, N) scores >= 0 by (score desc, rank asc), never an excluded item.

    The same as a stable sort of every row in rank order (`topk_excluding` when rank = item index), at
    the cost of one torch.topk. Returns items (B, k) int64 and scores (B, k) float32. Excluded items are
    overwritten with -inf: in `scores` itself when copy=False.
    """
    scores = np.array(scores, dtype=np.float32, copy=copy or None)
    if not (scores >= 0).all():  # NaN fails too
        raise ValueError("scores must be >= 0 (and not NaN)")
    n_rows, n_items = scores.shape
    lengths = np.array([len(e) for e in exclude], dtype=np.int64)
    excluded = np.concatenate([np.empty(0, dtype=np.int64), *exclude]).astype(np.int64)
    if len(excluded) and (excluded.min() < 0 or excluded.max() >= n_items):
        raise ValueError(f"exclusions hold item indices outside 0..{n_items - 1}")
    codes = np.unique(np.repeat(np.arange(n_rows, dtype=np.int64), lengths) * n_items + excluded)
    per_row = np.bincount(codes // n_items, minlength=n_rows)  # distinct excluded items per row
    if k > n_items or (per_row > n_items - k).any():
        raise ValueError(f"k={k} but some user has fewer than k of {n_items} items left after exclusions")
    scores.flat[codes] = -np.inf
    items = topk_tiebroken(scores, k, rank, most_excluded=int(per_row.max(initial=0)))
    return items, np.take_along_axis(scores, items, axis=1)


def sparse_recommend(histories: list[np.ndarray], exclude: list[np.ndarray], k: int,
                     weights_of: Callable[[list[np.ndarray]], sp.csr_matrix], matrix: sp.csr_matrix,
                     rank: np.ndarray, block_elements: int = BLOCK_ELEMENTS) -> Ranking:
    """Top-k of scores = W @ M per batch of users, W = weights_of(batch) (B, N), M (N, N) sparse."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_items = matrix.shape[1]
    batch = max(1, block_elements // max(n_items, 1))
    items = np.empty((len(histories), k), dtype=np.int64)
    scores = np.empty((len(histories), k), dtype=np.float32)
    for start in range(0, len(histories), batch):
        stop = min(start + batch, len(histories))
        dense = (weights_of(histories[start:stop]) @ matrix).toarray()  # (B, N) float32
        items[start:stop], scores[start:stop] = topk_ranked(dense, rank, exclude[start:stop], k, copy=False)
    return Ranking(items, scores)


def save_sparse(path: Path, arrays: dict[str, sp.csr_matrix | np.ndarray]) -> None:
    """Matrices as <name>.data/.indices/.indptr/.shape and vectors as themselves, in model.safetensors."""
    flat = {}
    for name, value in arrays.items():
        if sp.issparse(value):
            flat.update({f"{name}.data": value.data, f"{name}.indices": value.indices.astype(np.int64),
                         f"{name}.indptr": value.indptr.astype(np.int64),
                         f"{name}.shape": np.array(value.shape, dtype=np.int64)})
        else:
            flat[name] = np.ascontiguousarray(value)
    save_file(flat, str(Path(path) / WEIGHTS_FILE))


def load_sparse(path: Path, matrix: str) -> tuple[sp.csr_matrix, dict[str, np.ndarray]]:
    """The csr matrix `matrix` and the other arrays written by `save_sparse`."""
    flat = load_file(str(Path(path) / WEIGHTS_FILE))
    parts = [flat.pop(f"{matrix}.{p}") for p in ("data", "indices", "indptr", "shape")]
    csr = sp.csr_matrix((parts[0], parts[1].astype(np.int32), parts[2]), shape=tuple(int(s) for s in parts[3]))
    return csr, flat


@dataclass(kw_only=True)
class ItemKNNConfig:
    """Item-kNN's settings; the defaults are its best validation settings on ML-1M
    (bench/results/tune-simple-ml-1m.json); presets may override them. Field names are the `--set` keys."""

    itemknn_neighbours: int = 100  # similar items kept per item
    itemknn_decay: float = 0.5  # weight of a history item = decay ** (its age), 1 = plain sum

    def __post_init__(self) -> None:
        require_positive_int("itemknn_neighbours", self.itemknn_neighbours)
        require_decay("itemknn_decay", self.itemknn_decay)


class ItemKNN(Recommender):
    """Item-item cosine kNN with recency-weighted history and popularity tie-breaking (module docstring)."""

    name = "itemknn"
    settings_class = ItemKNNConfig

    def __init__(self, context: FitContext) -> None:
        super().__init__(context)
        own = self.own_settings
        self.neighbours, self.decay = int(own.itemknn_neighbours), float(own.itemknn_decay)
        self.similarity: sp.csr_matrix | None = None  # (N, N) pruned cosine
        self.popularity: np.ndarray | None = None  # (N,) training counts

    def fit(self, split: SequenceSplit) -> ItemKNN:
        n_items = self.context.catalogue.size
        self.popularity = popularity_scores(split, n_items)  # also checks the item range
        self.similarity = item_cosine_topk(binary_user_items(split.training_sequences(), n_items), self.neighbours)
        return self

    def _weights(self, histories: list[np.ndarray]) -> sp.csr_matrix:
        return recency_weights(histories, self.context.catalogue.size, self.decay, repeats="latest")

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        if self.similarity is None or self.popularity is None:
            raise RuntimeError("fit or load the item-kNN model before recommending")
        return sparse_recommend(histories, default_exclude(histories, exclude), k, self._weights,
                                self.similarity, popularity_rank(self.popularity))

    def save_arrays(self, path: Path) -> None:
        save_sparse(path, {"similarity": self.similarity, "popularity": self.popularity})

    def load_arrays(self, path: Path) -> None:
        self.similarity, rest = load_sparse(path, "similarity")
        self.popularity = rest["popularity"]

    def reason(self, item: int, score: float, history: np.ndarray, run: Any) -> str:
        weights = self._weights([history])  # (1, N): the history's items and their recency weights
        sources = weights.indices
        cosines = self.similarity[sources][:, [item]].toarray().ravel()  # S_ji for the history items j
        contribution = weights.data * cosines
        if len(sources) == 0 or contribution.max() <= 0:
            return (f"item-kNN score 0: nothing in your history is similar; one of the most popular "
                    f"({int(self.popularity[item])} training ratings)")
        best = int(np.argmax(contribution))
        return (f"item-kNN score {score:.3g}; most similar in your history: "
                f"{run.movies['title'].iloc[int(sources[best])]} (cosine {cosines[best]:.2f})")
