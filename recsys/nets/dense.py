"""The learned dense baseline (SASRec-style) at equal capacity with the generative model.

Same `SequenceBackbone`, but an item enters as a learned item-id embedding and the next item is scored
by a dot product of the last state with every item embedding (the input table, tied), trained with a
full softmax over the catalogue. At evaluation `recsys.models.dense` searches the user vector in a FAISS
inner-product index of the item embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from recsys.nets.backbone import BackboneConfig, SequenceBackbone
from recsys.nets.losses import linear_cross_entropy


@dataclass(kw_only=True)
class DenseConfig(BackboneConfig):
    num_items: int  # catalogue size: rows of the item table, which also scores the next item

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_items < 1:
            raise ValueError(f"DenseConfig.num_items must be >= 1, got {self.num_items}")


class DenseSequentialModel(nn.Module, PyTorchModelHubMixin):
    def __init__(self, config: DenseConfig | dict) -> None:
        super().__init__()
        if isinstance(config, dict):  # from_pretrained passes config.json back as a dict
            config = DenseConfig(**config)
        self.config = config
        self.item = nn.Embedding(config.num_items, config.d_model)
        nn.init.normal_(self.item.weight, std=config.d_model ** -0.5)
        self.backbone = SequenceBackbone(config)

    def hidden(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        x = self.item(items.clamp(min=0)) * self.config.d_model ** 0.5  # (B, L, D)
        return self.backbone(x, items < 0, users)

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor | None = None,
             existing: torch.Tensor | None = None) -> torch.Tensor:
        """Full-softmax cross-entropy at every real position. `existing` (N,) bool: the movies that exist
        at training time (the cold-start split's cold movies do not): the softmax runs over those only, so a
        movie added later keeps its untrained vector instead of one trained as a permanent negative."""
        h = self.hidden(inputs, users)  # (B, L, D)
        keep = (inputs >= 0) & (targets >= 0)
        weight, wanted = self.item.weight, targets[keep]
        if existing is not None:
            rows = existing.nonzero().squeeze(1)  # (N',)
            position = torch.full_like(existing, -1, dtype=torch.long)
            position[rows] = torch.arange(len(rows), device=rows.device)
            weight, wanted = weight[rows], position[wanted]
            if (wanted < 0).any():
                raise ValueError("a training target is not among the existing movies")
        # = F.cross_entropy(h[keep] @ weight.T, wanted), without storing the (M, N) logits
        return linear_cross_entropy(h[keep], weight, wanted)

    @torch.no_grad()
    def user_vectors(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        return self.hidden(items, users)[:, -1]  # (B, D)

    @torch.no_grad()
    def diagnostics(self, items: torch.Tensor, targets: torch.Tensor,
                    users: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-row nll = -log softmax(user vector . item table)[target] (B,), nats, history not masked."""
        scores = self.user_vectors(items, users) @ self.item.weight.T  # (B, N)
        return {"nll": scores.logsumexp(dim=1) - scores.gather(1, targets[:, None]).squeeze(1)}

    @torch.no_grad()
    def recommend(self, items: torch.Tensor, exclude: torch.Tensor, k: int,
                  users: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k by exact scores (used for validation during training; FAISS gives the same ranking)."""
        device = self.item.weight.device
        scores = self.user_vectors(items.to(device), None if users is None else users.to(device)) @ self.item.weight.T
        top = scores.masked_fill(exclude.to(device), float("-inf")).topk(k, dim=1)  # (B, k)
        return top.indices, top.values
