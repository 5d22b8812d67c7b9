"""RQ-KMeans: residual k-means codebooks, no training; SIDs unique and of the configured length."""

import itertools

import numpy as np
import pytest
import torch

from rqsid.assign import assign_semantic_ids
from rqsid.model import RQVAEConfig
from rqsid.presets import get_preset
from rqsid.rqkmeans import fit_rq_kmeans


def clustered(rng, n: int = 300, dim: int = 16, centres: int = 6) -> np.ndarray:
    means = rng.normal(0, 3, (centres, dim))
    x = means[rng.integers(0, centres, n)] + rng.normal(0, 0.3, (n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_rq_kmeans_sids_are_unique_and_of_the_configured_length():
    x = clustered(np.random.default_rng(0))
    preset = get_preset("rq-kmeans", len(x), x.shape[1], codebook_size=8)
    assert preset.fit == "kmeans" and preset.model.hidden_dims == ()
    model = fit_rq_kmeans(x, preset.model, seed=0)
    sids = assign_semantic_ids(model, x, method=preset.sid_method).sids
    assert sids.shape == (len(x), preset.model.num_levels + 1)
    assert len(np.unique(sids, axis=0)) == len(x)
    assert (sids[:, :3] < 8).all()


def test_rq_kmeans_levels_quantise_the_residuals_of_the_levels_before():
    """Level 1 is each point's nearest level-1 centroid; level 2 is the nearest level-2 centroid to what
    level 1 left; reconstruction improves with every level."""
    x = clustered(np.random.default_rng(1))
    config = RQVAEConfig(input_dim=16, hidden_dims=(), latent_dim=16, num_levels=3, codebook_size=8,
                         standardize=False)
    model = fit_rq_kmeans(x, config, seed=0)
    books = [vq.embedding.weight.detach().numpy() for vq in model.quantizer.quantizers]
    codes = model.quantizer(torch.as_tensor(x)).semantic_ids.numpy()
    residual, errors = x.copy(), [np.square(x).sum(1).mean()]
    for level, book in enumerate(books):
        nearest = np.square(residual[:, None, :] - book[None]).sum(-1).argmin(1)
        assert (nearest == codes[:, level]).mean() > 0.99  # ties in float32 aside
        residual = residual - book[codes[:, level]]
        errors.append(np.square(residual).sum(1).mean())
    assert all(b < a for a, b in itertools.pairwise(errors))


def test_rq_kmeans_is_seeded_and_refuses_an_encoder():
    x = clustered(np.random.default_rng(2))
    config = RQVAEConfig(input_dim=16, hidden_dims=(), latent_dim=16, num_levels=2, codebook_size=8,
                         standardize=False)
    first, again = (fit_rq_kmeans(x, config, seed=3).quantizer.quantizers[0].embedding.weight for _ in range(2))
    torch.testing.assert_close(first, again)
    with pytest.raises(ValueError, match="hidden_dims"):
        fit_rq_kmeans(x, RQVAEConfig(input_dim=16, hidden_dims=(8,), latent_dim=4), seed=0)
