"""Residual vector quantiser, compatible with the seed model card's `ResidualQuantizer`.

Constructor arguments, `forward(x) -> (quantized, semantic_ids, loss)` and the checkpoint layout
(`config.json` with the four constructor keys, weights `quantizers.{i}.embedding.weight`) are the seed's,
so a checkpoint written by the seed's code loads with `ResidualQuantizer.from_pretrained(dir)`.
On top of that it can initialise its codebooks by k-means (faiss) and re-seed codes nobody uses, the
two cures for the collapse that the seed's uniform initialisation suffers from.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


class QuantizerOutput(NamedTuple):
    quantized: torch.Tensor  # (B, D), straight-through: gradients flow to the input
    semantic_ids: torch.Tensor  # (B, L) int64, one code per level
    loss: torch.Tensor  # scalar: codebook + commitment_cost * commitment, summed over levels


class VectorQuantizer(nn.Module):
    """One codebook. `embedding` keeps the seed's parameter name."""

    def __init__(self, num_embeddings: int, embedding_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_embeddings, embedding_dim)
        # The seed's initialisation; k-means replaces it before training (see ResidualQuantizer.kmeans_init).
        self.embedding.weight.data.uniform_(-1.0 / num_embeddings, 1.0 / num_embeddings)

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codeword (squared Euclidean) for each row of x (B, D) -> (B,)."""
        codebook = self.embedding.weight  # (K, D)
        distances = (
            x.pow(2).sum(1, keepdim=True) - 2 * x @ codebook.T + codebook.pow(2).sum(1)[None, :]
        )  # (B, K)
        return distances.argmin(dim=1)


class ResidualQuantizer(nn.Module, PyTorchModelHubMixin):
    """`num_layers` codebooks of `num_embeddings` codes; each quantises what the previous ones left."""

    def __init__(
        self,
        num_layers: int = 4,
        num_embeddings: int = 1024,
        embedding_dim: int = 768,
        commitment_cost: float = 0.25,
    ) -> None:
        super().__init__()
        for name, value in (("num_layers", num_layers), ("num_embeddings", num_embeddings),
                            ("embedding_dim", embedding_dim)):
            if int(value) < 1:
                raise ValueError(f"ResidualQuantizer: {name} must be >= 1, got {value}")
        if commitment_cost < 0:
            raise ValueError(f"ResidualQuantizer: commitment_cost must be >= 0, got {commitment_cost}")
        self.num_layers = int(num_layers)
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        self.commitment_cost = float(commitment_cost)
        self.quantizers = nn.ModuleList(
            VectorQuantizer(self.num_embeddings, self.embedding_dim) for _ in range(self.num_layers)
        )

    def forward(self, x: torch.Tensor) -> QuantizerOutput:
        if x.ndim != 2 or x.shape[1] != self.embedding_dim:
            raise ValueError(
                f"ResidualQuantizer expects input of shape (batch, {self.embedding_dim}), "
                f"got {tuple(x.shape)}"
            )
        residual = x
        quantized = torch.zeros_like(x)
        ids, loss = [], x.new_zeros(())
        for vq in self.quantizers:
            code = vq.nearest(residual.detach())  # (B,)
            codeword = vq.embedding(code)  # (B, D)
            # Codebook term pulls codewords to the residuals; commitment term keeps the encoder near them.
            loss = loss + F.mse_loss(codeword, residual.detach())
            loss = loss + self.commitment_cost * F.mse_loss(residual, codeword.detach())
            quantized = quantized + codeword
            residual = residual - codeword.detach()
            ids.append(code)
        # Straight-through estimator: forward value is the quantised vector, gradient is the identity.
        quantized_st = x + (quantized - x).detach()
        return QuantizerOutput(quantized_st, torch.stack(ids, dim=1), loss)

    @torch.no_grad()
    def level_inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The residual each level quantises: [x, x - c1, x - c1 - c2, ...] (num_layers tensors (B, D))."""
        residual, inputs = x, []
        for vq in self.quantizers:
            inputs.append(residual)
            residual = residual - vq.embedding(vq.nearest(residual))
        return inputs

    @torch.no_grad()
    def decode_ids(self, semantic_ids: torch.Tensor) -> torch.Tensor:
        """Sum of the chosen codewords: (B, L) ids -> (B, D)."""
        return sum(vq.embedding(semantic_ids[:, i]) for i, vq in enumerate(self.quantizers))

    @torch.no_grad()
    def kmeans_init(self, x: torch.Tensor, *, seed: int = 0, niter: int = 25) -> None:
        """Set every level's codebook to k-means centroids (faiss) of that level's residuals on x (N, D)."""
        import faiss  # here, not at module level: loading or applying a quantizer needs no faiss

        residual = x.detach().float().cpu()
        for vq in self.quantizers:
            k = self.num_embeddings
            points = residual.numpy().astype(np.float32)
            if len(points) < k:  # faiss needs at least k points; repeat with jitter rather than fail
                reps = int(np.ceil(k / len(points)))
                noise = np.random.default_rng(seed).normal(0, 1e-4, (len(points) * reps, points.shape[1]))
                points = (np.tile(points, (reps, 1)) + noise).astype(np.float32)
            kmeans = faiss.Kmeans(points.shape[1], k, niter=niter, seed=seed, verbose=False)
            kmeans.train(points)
            vq.embedding.weight.copy_(torch.from_numpy(kmeans.centroids).to(vq.embedding.weight))
            residual = residual - vq.embedding(vq.nearest(residual.to(vq.embedding.weight))).cpu()

    @torch.no_grad()
    def reseed_dead_codes(self, x: torch.Tensor, generator: torch.Generator | None = None) -> list[int]:
        """Move every code that no row of x (N, D) selects onto a randomly drawn residual of its level.

        Returns the number of codes re-seeded per level. Dead codes never receive gradient, so without
        this a codebook that starts badly stays partly unused for the whole run.
        """
        counts = []
        for vq, inputs in zip(self.quantizers, self.level_inputs(x), strict=True):
            used = torch.bincount(vq.nearest(inputs), minlength=self.num_embeddings) > 0
            dead = (~used).nonzero().flatten()
            if len(dead):
                pick = torch.randint(len(inputs), (len(dead),), generator=generator, device="cpu")
                vq.embedding.weight[dead] = inputs[pick.to(inputs.device)]
            counts.append(len(dead))
        return counts
