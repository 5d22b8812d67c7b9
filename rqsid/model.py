"""RQ-VAE (TIGER-style): MLP encoder -> residual quantiser in a small latent space -> MLP decoder.

Read top to bottom: the config, the MLP block, the model. The model is a plain `nn.Module` with
`PyTorchModelHubMixin` (save_pretrained / from_pretrained / push_to_hub); Lightning lives in
`rqsid.lightning` so that inference never imports it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from rqsid.quantizer import ResidualQuantizer


def default_codebook_size(num_items: int) -> int:
    """Codebook size per level for a catalogue of `num_items`: the power of two nearest sqrt(N), in [16, 256].

    sqrt(N) codes at level 1 leave about sqrt(N) items per coarse code (a usable first decoding step),
    and three such levels give N^1.5 learned codes, so collisions stay rare. 256 is TIGER's size, which
    the rule reaches at about 65k items (ML-100K: 32, ML-1M: 64, ML-32M: 256).
    """
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, got {num_items}")
    return int(min(256, max(16, 2 ** round(math.log2(math.sqrt(num_items))))))


@dataclass
class RQVAEConfig:
    input_dim: int = 768
    hidden_dims: tuple[int, ...] = (512, 256, 128)  # empty: no encoder/decoder (the seed's setup)
    latent_dim: int = 32
    num_levels: int = 3
    codebook_size: int = 256
    commitment_cost: float = 0.25
    dropout: float = 0.0
    # Unit-norm 768-d inputs give a reconstruction loss far below the quantisation loss, and the
    # codebooks collapse; standardising each input dimension puts the two losses on one scale.
    standardize: bool = True
    extra: dict = field(default_factory=dict)  # free-form notes saved with the checkpoint

    def __post_init__(self) -> None:
        self.hidden_dims = tuple(int(h) for h in self.hidden_dims)
        positive = {"input_dim": self.input_dim, "latent_dim": self.latent_dim,
                    "num_levels": self.num_levels, "codebook_size": self.codebook_size}
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"RQVAEConfig.{name} must be a positive integer, got {value!r}")
        if any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"RQVAEConfig.hidden_dims must be positive, got {self.hidden_dims}")
        if not self.hidden_dims and self.latent_dim != self.input_dim:
            raise ValueError(
                f"RQVAEConfig: without hidden layers the latent is the input, so latent_dim "
                f"({self.latent_dim}) must equal input_dim ({self.input_dim})"
            )
        if self.commitment_cost < 0:
            raise ValueError(f"RQVAEConfig.commitment_cost must be >= 0, got {self.commitment_cost}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"RQVAEConfig.dropout must be in [0, 1), got {self.dropout}")


def mlp(dims: list[int], dropout: float) -> nn.Module:
    """Linear layers with SiLU between them and nothing after the last one.

    No activation after the last layer: a ReLU there keeps the latent non-negative, and the quantiser
    then lives in one orthant.
    """
    if len(dims) < 2:
        return nn.Identity()
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers += [nn.SiLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class RQVAEOutput(NamedTuple):
    reconstruction: torch.Tensor  # (B, input_dim), in input units
    latent: torch.Tensor  # (B, latent_dim)
    semantic_ids: torch.Tensor  # (B, num_levels)
    loss: torch.Tensor  # reconstruction_loss + quantization_loss
    reconstruction_loss: torch.Tensor
    quantization_loss: torch.Tensor


class RQVAE(nn.Module, PyTorchModelHubMixin):
    def __init__(self, config: RQVAEConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):  # from_pretrained hands the saved config.json over as a dict
            config = RQVAEConfig(**config)
        self.config = config
        dims = [config.input_dim, *config.hidden_dims, config.latent_dim]
        self.encoder = mlp(dims if config.hidden_dims else [], config.dropout)
        self.decoder = mlp(dims[::-1] if config.hidden_dims else [], config.dropout)
        self.quantizer = ResidualQuantizer(
            config.num_levels, config.codebook_size, config.latent_dim, config.commitment_cost
        )
        self.register_buffer("input_mean", torch.zeros(config.input_dim))
        self.register_buffer("input_std", torch.ones(config.input_dim))

    @torch.no_grad()
    def fit_standardizer(self, x: torch.Tensor) -> None:
        """Store per-dimension mean and std of the training inputs x (N, input_dim)."""
        if self.config.standardize:
            self.input_mean.copy_(x.mean(0))
            self.input_std.copy_(x.std(0).clamp_min(1e-6))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.input_std + self.input_mean

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs (B, input_dim) -> latent (B, latent_dim), before quantisation."""
        if x.ndim != 2 or x.shape[1] != self.config.input_dim:
            raise ValueError(
                f"RQVAE expects inputs of shape (batch, {self.config.input_dim}), got {tuple(x.shape)}"
            )
        return self.encoder(self.normalize(x))

    def forward(self, x: torch.Tensor) -> RQVAEOutput:
        latent = self.encode(x)  # (B, latent_dim)
        quantized, semantic_ids, quantization_loss = self.quantizer(latent)
        decoded = self.decoder(quantized)  # (B, input_dim), standardised units
        reconstruction_loss = F.mse_loss(decoded, self.normalize(x))
        return RQVAEOutput(
            reconstruction=self.denormalize(decoded),
            latent=latent,
            semantic_ids=semantic_ids,
            loss=reconstruction_loss + quantization_loss,
            reconstruction_loss=reconstruction_loss,
            quantization_loss=quantization_loss,
        )
