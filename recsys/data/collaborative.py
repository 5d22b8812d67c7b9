"""Collaborative item vectors for the tokenizer's input, from training interactions only.

The RQ-VAE groups movies by what its input says about them. Text alone groups them by content, while the
SID model has to predict what people watch next; appending item factors of the training interaction
matrix (LETTER's collaborative signal, here a truncated SVD) lets the codes follow both.

Only the split's training sequences enter the matrix (each evaluated user's history before the
validation and test items, and temporal-split extras), so no held-out rating reaches the SIDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file
from scipy.sparse.linalg import svds

from recsys.data.splits import Catalogue, make_split

# What a movie without a training interaction gets as factors: zeros (all such movies then share one branch
# of the tree), or the factors its text predicts (`fill_unrated`)
UNRATED_FACTORS = ("zero", "text")
TEXT_TO_FACTORS = "text_to_factors.safetensors"  # a run's TextToFactors, in quantizer/ beside the RQ-VAE


def interaction_matrix(sequences: list[np.ndarray], num_items: int) -> sp.csr_matrix:
    """(users, items) binary matrix: 1 where the user's sequence holds the item."""
    rows = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    cols = np.concatenate(sequences) if sequences else np.empty(0, np.int64)
    matrix = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(len(sequences), num_items))
    matrix.data[:] = 1.0  # a movie rated twice counts once
    return matrix


def item_factors(sequences: list[np.ndarray], num_items: int, dims: int, seed: int) -> np.ndarray:
    """(N, dims) item factors V * sqrt(S) of the training matrix's rank-`dims` SVD, rows L2-normalised
    (movies without a training interaction get zeros)."""
    matrix = interaction_matrix(sequences, num_items)
    if not 1 <= dims < min(matrix.shape):
        raise ValueError(f"collaborative_dims must be in [1, {min(matrix.shape) - 1}], got {dims}")
    v0 = np.random.default_rng(seed).uniform(-1, 1, min(matrix.shape))  # seeded start: same factors every run
    _, singular, vt = svds(matrix, k=dims, v0=v0)
    order = np.argsort(singular)[::-1]
    factors = (vt[order].T * np.sqrt(singular[order])).astype(np.float32)  # (N, dims)
    factors *= np.sign(factors.sum(0, keepdims=True) + 1e-12)  # fix each column's sign (SVD leaves it open)
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return np.divide(factors, norms, out=np.zeros_like(factors), where=norms > 0)


@dataclass(frozen=True)
class TextToFactors:
    """A movie's collaborative factors predicted from its text embedding x: normalise(W x + b), the rows of
    `item_factors` being unit vectors too. Fit as a ridge regression on the movies whose factors are known,
    its penalty chosen among them by efficient leave-one-out (`sklearn.linear_model.RidgeCV`). Saved beside
    the quantizer, so a free-text query can be placed in a tree of collaborative IDs."""

    weight: np.ndarray  # (dims, D)
    bias: np.ndarray  # (dims,)

    @classmethod
    def fit(cls, text_embeddings: np.ndarray, factors: np.ndarray) -> TextToFactors:
        from sklearn.linear_model import RidgeCV  # here: scikit-learn is needed by this option alone

        ridge = RidgeCV(alphas=np.logspace(-3, 2, 11)).fit(text_embeddings, factors)
        return cls(np.ascontiguousarray(ridge.coef_, np.float32), np.ascontiguousarray(ridge.intercept_, np.float32))

    def __call__(self, text_embeddings: np.ndarray) -> np.ndarray:
        """(N, D) text embeddings -> (N, dims) unit-length factors (a zero prediction stays zero)."""
        predicted = (np.asarray(text_embeddings, np.float32) @ self.weight.T + self.bias).astype(np.float32)
        norms = np.linalg.norm(predicted, axis=1, keepdims=True)
        return np.divide(predicted, norms, out=np.zeros_like(predicted), where=norms > 0)

    def save(self, path: Path | str) -> None:
        save_file({"weight": self.weight, "bias": self.bias}, str(path))

    @classmethod
    def load(cls, path: Path | str) -> TextToFactors:
        tensors = load_file(str(path))
        return cls(tensors["weight"], tensors["bias"])


@dataclass(frozen=True)
class TokenizerInput:
    """What the RQ-VAE reads, (N, D + dims) or (N, dims), and the text-to-factors map that filled the
    unrated movies' factors, if one did."""

    vectors: np.ndarray
    text_to_factors: TextToFactors | None = None


def fill_unrated(factors: np.ndarray, text_embeddings: np.ndarray) -> tuple[np.ndarray, TextToFactors | None]:
    """(N, dims) factors where each all-zero row (a movie without a training interaction) is replaced by
    what its text predicts (`TextToFactors`, fit on the movies that have interactions), and the map (kept
    even when every movie has interactions, for text queries); None when fewer than two have any."""
    rated = np.linalg.norm(factors, axis=1) > 0
    if rated.sum() < 2:
        return factors, None
    text_to_factors = TextToFactors.fit(text_embeddings[rated], factors[rated])
    out = factors.copy()
    out[~rated] = text_to_factors(text_embeddings[~rated])
    return out, text_to_factors


def factors_from_text(factors: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
    """`fill_unrated`'s factors alone: what a movie's text says about who watches it, learned from the
    movies whose audience is known."""
    return fill_unrated(factors, text_embeddings)[0]


def tokenizer_input(text_embeddings: np.ndarray, ratings: pd.DataFrame, movie_ids: np.ndarray, *,
                    dims: int, split: str, seed: int, text: bool = True, unrated: str = "zero") -> TokenizerInput:
    """The text embeddings (N, D) with the training matrix's item factors (N, dims) appended; with
    `text=False` the factors alone (N, dims): collaborative IDs. Movies without a training interaction
    (cold ones, say) get zero factors (`unrated="zero"`: with `text=False` they all share one vector) or
    the factors their text predicts (`"text"`, `fill_unrated`; the map comes with the vectors)."""
    if unrated not in UNRATED_FACTORS:
        raise ValueError(f"unrated must be one of {UNRATED_FACTORS}, got {unrated!r}")
    sequences = make_split(split, ratings, Catalogue(np.asarray(movie_ids))).training_sequences()
    factors, text_to_factors = item_factors(sequences, len(movie_ids), dims, seed), None
    if unrated == "text":
        factors, text_to_factors = fill_unrated(factors, text_embeddings)
    vectors = np.hstack([text_embeddings, factors]).astype(np.float32) if text else factors
    return TokenizerInput(vectors, text_to_factors)
