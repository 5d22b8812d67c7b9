"""From learned codes to unique Semantic IDs.

Two ways to make every item's SID unique, both giving `num_levels` (+1) tokens per item:

- ``"append"`` (TIGER): keep all learned levels and append one token that numbers the items sharing
  the same learned codes (0 for the item closest to its quantised vector, then 1, 2, ...).
- ``"last-level"`` (LC-Rec-style): the last learned level is re-assigned collision-free: inside each
  group of items that share the earlier levels, items and last-level codes are matched one-to-one by a
  minimum-cost assignment (scipy's Hungarian solver) on the squared distance to each codeword.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.optimize import linear_sum_assignment

from rqsid.model import RQVAE

Method = Literal["append", "last-level"]
METHODS: tuple[str, ...] = ("append", "last-level")


class SemanticIds(NamedTuple):
    sids: np.ndarray  # (N, T) int64, unique rows: the final Semantic IDs
    learned: np.ndarray  # (N, num_levels) int64, the quantiser's own codes before disambiguation
    residual_norm: np.ndarray  # (N,) distance between each latent and its quantised vector


@torch.no_grad()
def quantize_in_order(model: RQVAE, embeddings: np.ndarray, batch_size: int = 4096) -> SemanticIds:
    """Learned codes for every row of embeddings, in row order (never through a shuffled loader)."""
    model.eval()
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    codes, norms = [], []
    for start in range(0, len(x), batch_size):
        latent = model.encode(x[start:start + batch_size])  # (B, latent_dim)
        ids = model.quantizer(latent).semantic_ids  # (B, L)
        norms.append((latent - model.quantizer.decode_ids(ids)).norm(dim=1))
        codes.append(ids)
    learned = torch.cat(codes).numpy().astype(np.int64)
    return SemanticIds(learned.copy(), learned, torch.cat(norms).numpy())


def append_disambiguation_token(learned: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """(N, L) codes -> (N, L + 1): the extra token ranks items within their collision group by order_key."""
    frame = pd.DataFrame(learned, columns=[f"c{i}" for i in range(learned.shape[1])])
    frame["key"], frame["row"] = order_key, np.arange(len(learned))
    frame = frame.sort_values(["key", "row"], kind="stable")
    rank = frame.groupby(list(frame.columns[: learned.shape[1]]), sort=False).cumcount()
    extra = rank.sort_index().to_numpy(dtype=np.int64)
    return np.column_stack([learned, extra])


@torch.no_grad()
def reassign_last_level(model: RQVAE, embeddings: np.ndarray, learned: np.ndarray) -> np.ndarray:
    """Re-assign the last level so that no two items share all codes (optimal matching per prefix group)."""
    quantizer = model.quantizer
    k = quantizer.num_embeddings
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    last_inputs = quantizer.level_inputs(model.encode(x))[-1]  # (N, latent_dim), what the last level sees
    codebook = quantizer.quantizers[-1].embedding.weight  # (K, latent_dim)
    result = learned.copy()
    prefix = pd.DataFrame(learned[:, :-1]).groupby(list(range(learned.shape[1] - 1)), sort=False).ngroup()
    groups = pd.Series(np.arange(len(learned))).groupby(prefix.to_numpy()).indices
    for rows in groups.values():
        if len(rows) == 1:
            continue
        if len(rows) > k:
            raise ValueError(
                f"{len(rows)} items share one SID prefix but the last level has only {k} codes: "
                f"use method='append' or a larger codebook_size"
            )
        cost = torch.cdist(last_inputs[rows], codebook).pow(2).numpy()  # (n, K)
        item_idx, code_idx = linear_sum_assignment(cost)
        result[rows[item_idx], -1] = code_idx
    return result


def assign_semantic_ids(
    model: RQVAE, embeddings: np.ndarray, method: Method = "append", batch_size: int = 4096
) -> SemanticIds:
    """A unique SID for every row of embeddings (N, D), in row order.

    "append" gives num_levels + 1 tokens; "last-level" gives num_levels tokens.
    """
    if method not in METHODS:
        raise ValueError(f"unknown SID method {method!r}; choose one of {METHODS}")
    coded = quantize_in_order(model, embeddings, batch_size)
    if method == "append":
        sids = append_disambiguation_token(coded.learned, coded.residual_norm)
    else:
        sids = reassign_last_level(model, embeddings, coded.learned)
    if len(np.unique(sids, axis=0)) != len(sids):  # a guarantee of both methods, checked, never assumed
        raise AssertionError("Semantic IDs are not unique after disambiguation")
    return SemanticIds(sids, coded.learned, coded.residual_norm)


def sid_strings(sids: np.ndarray) -> list[str]:
    """Readable form of each SID row, e.g. [12, 5, 33, 0] -> "12-5-33-0"."""
    return ["-".join(map(str, row)) for row in sids.tolist()]


@torch.no_grad()
def quantize_within(model: RQVAE, embedding: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Learned codes (num_levels,) of one new input (D,), restricted to prefixes that `known` codes have.

    Residual quantisation as in training, except that each level picks the nearest codeword among those
    that some known item (rows of `known`, (N, >= num_levels)) has under the codes chosen so far. A query
    (e.g. a text search) then always lands on a prefix with items, where plain quantisation may pick a
    first-level code that no item uses.
    """
    model.eval()
    residual = model.encode(torch.as_tensor(np.asarray(embedding, dtype=np.float32))[None])[0]  # (latent_dim,)
    under = np.ones(len(known), dtype=bool)
    codes = []
    for level, quantizer in enumerate(model.quantizer.quantizers):
        allowed = torch.as_tensor(np.unique(known[under, level]))
        codebook = quantizer.embedding.weight[allowed]  # (K', latent_dim)
        code = int(allowed[(codebook - residual).pow(2).sum(1).argmin()])
        residual = residual - quantizer.embedding.weight[code]
        under &= known[:, level] == code
        codes.append(code)
    return np.array(codes, dtype=np.int64)
