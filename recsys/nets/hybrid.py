"""SID-generative with a jointly trained dense head (LIGER-style hybrid): candidates from both, one score.

Read top to bottom: config, model.

- The network is the SID-generative model (`recsys.nets.generative`) plus a dense output: item i's vector is
  its own input embedding, the sum of its SID token embeddings and its id embedding (tied, as the dense
  baseline ties its table), and its dense logit is state . vector_i / sqrt(D).
- Training minimises both negative log-likelihoods of the next item: the SID factorisation's and the
  dense softmax's (over the movies that exist at training time).
- Ranking: the union of the SID model's exact top C and the dense head's top C, each candidate scored by
      log p_sid(i | h) + dense_weight * log softmax_dense(i | h)
  and the top k of that. An item in neither list is not ranked (C >> k, as LIGER re-ranks).
- The id table starts at zero, so a movie that never entered training (the cold-start split's) keeps a
  zero id vector and its dense vector is its SID tokens' sum: it is scored through the codes it shares
  with movies people watched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recsys.nets.decoding import NEG_INF, BeamResult
from recsys.nets.exact_scoring import exact_topk
from recsys.nets.generative import GenerativeConfig, SidGenerativeModel
from recsys.nets.losses import linear_cross_entropy


@dataclass(kw_only=True)
class HybridConfig(GenerativeConfig):
    dense_weight: float = 1.0  # weight of the dense log-probability beside the SID one when ranking
    candidates: int = 100  # C: each side's top-C candidates are re-scored

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.item_embedding:
            raise ValueError("HybridConfig.item_embedding must be true: the dense head scores the id embedding")
        if not isinstance(self.dense_weight, int | float) or self.dense_weight < 0:
            raise ValueError(f"HybridConfig.dense_weight must be >= 0, got {self.dense_weight!r}")
        if not isinstance(self.candidates, int) or self.candidates < 1:
            raise ValueError(f"HybridConfig.candidates must be a positive integer, got {self.candidates!r}")


class SidHybridModel(SidGenerativeModel):
    def __init__(self, config: HybridConfig | dict, item_sids: np.ndarray | None = None) -> None:
        if isinstance(config, dict):  # from_pretrained passes config.json back as a dict
            config = HybridConfig(**config)
        super().__init__(config, item_sids)
        nn.init.zeros_(self.item.weight)  # untrained movies keep a zero id vector (module docstring)

    def item_vectors(self) -> torch.Tensor:
        """(N, D) every movie's dense output vector: its input embedding (SID tokens + id)."""
        return self.embed_items(torch.arange(self.config.num_items, device=self.item_sids.device)[None])[0]

    def dense_logits(self, state: torch.Tensor) -> torch.Tensor:
        """(B, D') head states -> (B, N) dense logits, from the history state (the first D features)."""
        return state[:, :self.config.d_model] @ self.item_vectors().T * self.config.d_model ** -0.5

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor | None = None,
             existing: torch.Tensor | None = None) -> torch.Tensor:
        """SID NLL + dense softmax NLL of the next item, at every position with a real input and target."""
        states = self.head_states(self.hidden(inputs, users), inputs)  # (B, L, D')
        keep = (inputs >= 0) & (targets >= 0)
        state, wanted = states[keep], targets[keep]  # (M, D'), (M,)
        sid_loss = self.head.teacher_forced_loss(state, self.item_sids[wanted], self.live(existing))
        weight = self.item_vectors() * self.config.d_model ** -0.5  # (N, D)
        if existing is not None:  # softmax over the movies that exist at training time
            rows = existing.nonzero().squeeze(1)
            position = torch.full_like(existing, -1, dtype=torch.long)
            position[rows] = torch.arange(len(rows), device=rows.device)
            weight, wanted = weight[rows], position[wanted]
        return sid_loss + linear_cross_entropy(state[:, :self.config.d_model], weight, wanted)

    def sid_log_probs(self, state: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, D') head states, (B, C) items -> (B, C) log p_sid(item | history), the true prefix given."""
        batch, count = items.shape
        sids = self.item_sids[items].reshape(batch * count, -1)  # (B * C, T)
        rows = state.repeat_interleave(count, dim=0)  # (B * C, D)
        total = rows.new_zeros(len(rows))
        for level in range(sids.shape[1]):
            log_probs = F.log_softmax(self.level_logits(rows, level).float(), dim=-1)
            total = total + log_probs.gather(1, sids[:, level:level + 1]).squeeze(1)
            if level < sids.shape[1] - 1:
                rows = self.advance(rows, level, sids[:, level])
        return total.view(batch, count)

    @torch.no_grad()
    def diagnostics(self, items: torch.Tensor, targets: torch.Tensor,
                    users: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The SID figures of `SidGenerativeModel.diagnostics`, plus dense/nll: the dense head's NLL (nats)."""
        figures = super().diagnostics(items, targets, users)
        logits = self.dense_logits(self.decoder_state(items, users))  # (B, N)
        figures["dense/nll"] = logits.logsumexp(dim=1) - logits.gather(1, targets[:, None]).squeeze(1)
        return figures

    @torch.no_grad()
    def recommend(self, items: torch.Tensor, exclude: torch.Tensor, k: int,
                  users: torch.Tensor | None = None) -> BeamResult:
        """Top-k unseen movies by the combined score over the union of both sides' top-C candidates."""
        device = self.item_sids.device
        exclude = exclude.to(device)
        state = self.decoder_state(items.to(device), None if users is None else users.to(device))  # (B, D')
        count = min(max(self.config.candidates, k), int((~exclude).sum(1).min()))
        from_sid = exact_topk(self, state, self.trie(), exclude, count).items  # (B, C)
        dense = F.log_softmax(self.dense_logits(state).float(), dim=-1)  # (B, N)
        from_dense = dense.masked_fill(exclude, NEG_INF).topk(count, dim=1).indices  # (B, C)
        pool = torch.cat([from_sid, from_dense], dim=1)  # (B, 2C), duplicates masked below
        scores = self.sid_log_probs(state, pool) + self.config.dense_weight * dense.gather(1, pool)
        ordered, where = pool.sort(dim=1, stable=True)  # a movie found by both sides is scored once
        repeat = torch.zeros_like(pool, dtype=torch.bool)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
        duplicate = torch.zeros_like(repeat).scatter_(1, where, repeat)
        order = torch.sort(scores.masked_fill(duplicate, NEG_INF), dim=1, descending=True, stable=True)
        top = order.indices[:, :k]
        return BeamResult(pool.gather(1, top), order.values[:, :k])
