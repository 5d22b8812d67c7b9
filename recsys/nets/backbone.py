"""The causal transformer over a user's item history, shared by the generative and the dense model.

Both models differ only in how an item enters (sum of its SID token embeddings, or a learned item-id
embedding) and how the next item leaves (SID tokens generated one by one, or a dot product with every
item). Sharing this block is what makes the dense baseline "equal capacity".

Sequences are left-padded, so the last position is always the most recent item; position embeddings
count back from it (position 0 = most recent), so a short history and the tail of a long one look alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BackboneConfig:
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50  # items of history the model reads
    user_buckets: int = 0  # hashed user-id embeddings added to every position (TIGER's user token); 0 = none

    def __post_init__(self) -> None:
        for name in ("d_model", "n_layers", "n_heads", "max_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.user_buckets < 0:
            raise ValueError(f"user_buckets must be >= 0, got {self.user_buckets}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class Dropout(nn.Module):
    """nn.Dropout's distribution (zero with probability p, survivors scaled by 1 / (1 - p)) from a uniform
    draw compared with p: on a CPU that is about twice as fast as the bernoulli_ sampling nn.Dropout uses,
    and dropout was a fifth of a training step (bench/results/epoch-profile-*.txt)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * torch.rand_like(x).ge_(self.p).mul_(1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


def attention_mask(padding: torch.Tensor) -> torch.Tensor:
    """(B, L) True-at-padding -> (B, 1, L, L) True where attention is allowed.

    Causal, no attention to padding, but every position may attend to itself, so that rows of padding
    have one allowed key and never produce NaN.
    """
    length = padding.shape[1]
    past = torch.tril(torch.ones(length, length, dtype=torch.bool, device=padding.device))
    allowed = past[None] & ~padding[:, None, :]  # (B, L, L)
    allowed |= torch.eye(length, dtype=torch.bool, device=padding.device)[None]
    return allowed[:, None]


class SelfAttention(nn.Module):
    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.n_heads, self.dropout = config.n_heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)  # (B, H, L, d_h)
        return self.proj(y.transpose(1, 2).reshape(b, length, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        d = config.d_model
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = SelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), Dropout(config.dropout))
        self.drop = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x), allowed))
        return x + self.mlp(self.ln2(x))


class SequenceBackbone(nn.Module):
    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.config = config
        self.position = nn.Embedding(config.max_len, config.d_model)
        self.user = nn.Embedding(config.user_buckets, config.d_model) if config.user_buckets else None
        self.dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.d_model)

    def forward(self, items: torch.Tensor, padding: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """Item representations (B, L, D), padding mask (B, L), optional user ids (B,) -> states (B, L, D).

        The hidden state at position t summarises items 0..t and is trained to predict item t + 1.
        """
        length = items.shape[1]
        if length > self.config.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.config.max_len}")
        recency = torch.arange(length - 1, -1, -1, device=items.device)  # (L,) 0 = most recent
        x = items + self.position(recency)[None]  # (B, L, D)
        if self.user is not None and users is not None:
            x = x + self.user(users % self.config.user_buckets)[:, None, :]
        x = self.dropout(x)
        x = x.masked_fill(padding[..., None], 0.0)
        allowed = attention_mask(padding)
        for block in self.blocks:
            x = block(x, allowed)
        return self.norm(x)
