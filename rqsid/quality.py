"""How good a set of Semantic IDs is: codebook use, collisions, reconstruction, semantic coherence.

Each function is small and pure (arrays in, numbers out) so that it can be checked by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from rqsid.assign import SemanticIds


def codebook_usage(codes: np.ndarray, codebook_size: int) -> dict[str, float]:
    """Use of one level's codebook by codes (N,).

    utilisation = |{c : count(c) > 0}| / K
    perplexity  = exp(-sum_c p_c log p_c),  p_c = count(c) / N   (K when all codes are used equally)
    """
    counts = np.bincount(np.asarray(codes), minlength=codebook_size)
    p = counts[counts > 0] / counts.sum()
    return {
        "codes_used": int((counts > 0).sum()),
        "codebook_size": int(codebook_size),
        "utilisation": float((counts > 0).sum() / codebook_size),
        "perplexity": float(np.exp(-(p * np.log(p)).sum())),
    }


def collisions(codes: np.ndarray) -> dict[str, float]:
    """Items whose full code row (N, L) is shared with at least one other item.

    collision_rate = |{i : exists j != i, codes_i = codes_j}| / N; also the largest group's size.
    """
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    group_size = counts[inverse.ravel()]
    return {
        "collision_rate": float((group_size > 1).mean()),
        "largest_collision_group": int(counts.max()),
        "distinct_codes": len(counts),
    }


def reconstruction_quality(inputs: np.ndarray, reconstructions: np.ndarray) -> dict[str, float]:
    """mean cosine(x_i, x̂_i) and mean squared error (1/(N·D)) Σ (x - x̂)² over all items."""
    x, y = np.asarray(inputs, np.float64), np.asarray(reconstructions, np.float64)
    cosine = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)
    return {"reconstruction_cosine": float(cosine.mean()), "reconstruction_mse": float(((x - y) ** 2).mean())}


def multi_hot(label_sets: Sequence[Sequence[str]]) -> np.ndarray:
    """(N, V) 0/1 matrix of the labels each item carries."""
    vocab = sorted({label for labels in label_sets for label in labels})
    index = {label: j for j, label in enumerate(vocab)}
    matrix = np.zeros((len(label_sets), len(vocab)), dtype=np.float32)
    for i, labels in enumerate(label_sets):
        matrix[i, [index[label] for label in labels]] = 1.0
    return matrix


def _pair_jaccard(matrix: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = (matrix[a] * matrix[b]).sum(1)
    union = matrix[a].sum(1) + matrix[b].sum(1) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def within_group_jaccard(matrix: np.ndarray, groups: np.ndarray) -> float:
    """Mean Jaccard |A∩B| / |A∪B| over all unordered pairs of items that share a group id."""
    total, pairs = 0.0, 0
    for rows in pd.Series(np.arange(len(groups))).groupby(groups).indices.values():
        if len(rows) < 2:
            continue
        sub = matrix[rows]  # (n, V)
        inter = sub @ sub.T
        sizes = sub.sum(1)
        union = sizes[:, None] + sizes[None, :] - inter
        jac = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        upper = np.triu_indices(len(rows), k=1)
        total += float(jac[upper].sum())
        pairs += len(upper[0])
    return total / pairs if pairs else float("nan")


def coherence_ratio(
    codes: np.ndarray, label_sets: Sequence[Sequence[str]], *, levels: int, rng: np.random.Generator,
    random_pairs: int = 200_000,
) -> dict[str, float]:
    """Semantic coherence of the first `levels` code levels.

    ratio = mean Jaccard of pairs sharing the prefix / mean Jaccard of random pairs (i != j).
    1 means the codes know nothing of the labels; higher is better.
    """
    matrix = multi_hot(label_sets)
    groups = pd.DataFrame(np.asarray(codes)[:, :levels]).groupby(list(range(levels))).ngroup().to_numpy()
    within = within_group_jaccard(matrix, groups)
    n = len(matrix)
    a, b = rng.integers(0, n, random_pairs), rng.integers(0, n, random_pairs)
    keep = a != b
    baseline = float(_pair_jaccard(matrix, a[keep], b[keep]).mean())
    return {"within_jaccard": within, "random_jaccard": baseline, "ratio": within / baseline}


def sid_quality_report(
    model: torch.nn.Module, embeddings: np.ndarray, semantic_ids: SemanticIds,
    label_sets: Sequence[Sequence[str]], *, seed: int = 0,
) -> dict[str, object]:
    """Every figure above for one trained RQ-VAE and its SIDs, as a JSON-ready dict."""
    learned, k = semantic_ids.learned, model.quantizer.num_embeddings
    with torch.no_grad():
        reconstruction = model(torch.as_tensor(np.asarray(embeddings, np.float32))).reconstruction.numpy()
    rng = np.random.default_rng(seed)
    coherence = {f"level_1{''.join(f'+{j + 1}' for j in range(1, n))}": coherence_ratio(
        learned, label_sets, levels=n, rng=rng) for n in (1, 2) if n <= learned.shape[1]}
    return {
        "num_items": len(learned),
        "sid_length": int(semantic_ids.sids.shape[1]),
        "unique_sids": bool(len(np.unique(semantic_ids.sids, axis=0)) == len(learned)),
        "levels": [{"level": i + 1, **codebook_usage(learned[:, i], k)} for i in range(learned.shape[1])],
        "learned_collisions": collisions(learned),
        "reconstruction": reconstruction_quality(embeddings, reconstruction),
        "coherence": coherence,
    }
