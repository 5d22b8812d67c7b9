"""RQ-KMeans: residual k-means codebooks in the embedding space itself, with no network to train.

Level 1 clusters the embeddings with faiss k-means; each next level clusters what the levels before it
left over (the residuals). GRID and Cornac found this tokenizer matches or beats a trained RQ-VAE. The
result is an `RQVAE` with no encoder or decoder (`hidden_dims=()`), so that saving, SID assignment, the
quality report and SID-prefix search work on it unchanged.
"""

from __future__ import annotations

import numpy as np
import torch

from rqsid.model import RQVAE, RQVAEConfig


def fit_rq_kmeans(embeddings: np.ndarray, config: RQVAEConfig, *, seed: int, niter: int = 25) -> RQVAE:
    """Codebooks of every level from residual k-means of `embeddings` (N, D); returns the model in eval mode."""
    if config.hidden_dims:
        raise ValueError(f"RQ-KMeans quantises the embeddings themselves: hidden_dims must be (), got "
                         f"{config.hidden_dims}")
    x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
    if x.ndim != 2 or x.shape[1] != config.input_dim:
        raise ValueError(f"embeddings must have shape (N, {config.input_dim}), got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("embeddings contain NaN/inf")
    model = RQVAE(config)
    model.fit_standardizer(x)
    model.quantizer.kmeans_init(model.encode(x), seed=seed, niter=niter)
    return model.eval()
