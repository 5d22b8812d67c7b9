"""First-order Markov chain over consecutive items, scored from the last few items of a history.

    T_ab = number of times b directly follows a in a training sequence (sequence ends never pair up;
           a re-rated item a -> a counts like any other pair)                                  (N, N)
    P_ab = T_ab / sum_c T_ac   (a row without an outgoing transition stays empty)
    score_u(b) = sum_{a=0}^{m-1} decay**a * P[h_{-1-a}, b]     over the last m = `last` history items
                 (an item that occurs twice among them contributes twice)

Ranking and popularity backoff are ItemKNN's (`recsys.models.itemknn`): order by (score desc, training
popularity desc, item index asc), so a user whose last items have no outgoing transition gets the most
popular unseen items; the returned scores are the chain's own, without any popularity term.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recsys.data.splits import SequenceSplit
from recsys.models.base import FitContext, Ranking, Recommender, default_exclude
from recsys.models.itemknn import load_sparse, popularity_rank, recency_weights, save_sparse, sparse_recommend
from recsys.models.ranking import popularity_scores
from rqsid.settings import require_decay, require_positive_int


def transition_counts(sequences: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    """(N, N) float32 csr T_ab = occurrences of the consecutive pair (a, b) within one sequence."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    items = np.concatenate([np.empty(0, dtype=np.int32), *sequences]).astype(np.int32)
    follows = np.ones(len(items), dtype=bool)  # follows[i]: items[i] -> items[i + 1] is within a sequence
    ends = np.cumsum(lengths)[lengths > 0] - 1
    follows[ends] = False
    source = np.flatnonzero(follows[:-1]) if len(items) else np.empty(0, dtype=np.int64)
    counts = np.ones(len(source), dtype=np.float32)  # exact while a pair occurs fewer than 2**24 times
    return sp.csr_matrix((counts, (items[source], items[source + 1])), shape=(n_items, n_items))


def row_normalise(counts: sp.csr_matrix) -> sp.csr_matrix:
    """P = diag(1 / row sums) T, empty rows left empty."""
    totals = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(inverse.astype(np.float32)) @ counts, dtype=np.float32)


@dataclass(kw_only=True)
class MarkovConfig:
    """The Markov chain's settings; defaults as item-kNN's (`recsys.models.itemknn.ItemKNNConfig`)."""

    markov_last: int = 10  # how many of the last history items vote for the next one
    markov_decay: float = 0.5  # weight of the a-th last item = decay ** a

    def __post_init__(self) -> None:
        require_positive_int("markov_last", self.markov_last)
        require_decay("markov_decay", self.markov_decay)


class Markov(Recommender):
    """Transition probabilities from the last `markov_last` items, decayed, with popularity tie-breaking."""

    name = "markov"
    settings_class = MarkovConfig

    def __init__(self, context: FitContext) -> None:
        super().__init__(context)
        self.last, self.decay = int(self.own_settings.markov_last), float(self.own_settings.markov_decay)
        self.counts: sp.csr_matrix | None = None  # (N, N) T
        self.transitions: sp.csr_matrix | None = None  # (N, N) P
        self.popularity: np.ndarray | None = None  # (N,) training counts

    def fit(self, split: SequenceSplit) -> Markov:
        n_items = self.context.catalogue.size
        self.popularity = popularity_scores(split, n_items)  # also checks the item range
        self.counts = transition_counts(split.training_sequences(), n_items)
        self.transitions = row_normalise(self.counts)
        return self

    def _weights(self, histories: list[np.ndarray]) -> sp.csr_matrix:
        return recency_weights(histories, self.context.catalogue.size, self.decay, last=self.last, repeats="sum")

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        if self.transitions is None or self.popularity is None:
            raise RuntimeError("fit or load the Markov model before recommending")
        return sparse_recommend(histories, default_exclude(histories, exclude), k, self._weights,
                                self.transitions, popularity_rank(self.popularity))

    def save_arrays(self, path: Path) -> None:
        save_sparse(path, {"counts": self.counts, "popularity": self.popularity})

    def load_arrays(self, path: Path) -> None:
        self.counts, rest = load_sparse(path, "counts")
        self.transitions = row_normalise(self.counts)
        self.popularity = rest["popularity"]

    def reason(self, item: int, score: float, history: np.ndarray, run: Any) -> str:
        recent = np.asarray(history, dtype=np.int64)[-self.last:][::-1]  # age 0 first
        if len(recent) == 0:
            return f"no history: one of the most popular ({int(self.popularity[item])} training ratings)"
        probabilities = self.transitions[recent][:, [item]].toarray().ravel()  # P[h_{-1-a}, item]
        contribution = self.decay ** np.arange(len(recent)) * probabilities
        if contribution.max() <= 0:
            return (f"never followed your last {len(recent)} item(s) in training; one of the most popular "
                    f"({int(self.popularity[item])} training ratings)")
        best = int(np.argmax(contribution))
        source = int(recent[best])
        times = round(float(self.counts[source, item]))
        return (f"followed {run.movies['title'].iloc[source]} {times} time(s) in the training sequences "
                f"(p = {probabilities[best]:.2f})")
