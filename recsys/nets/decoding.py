"""Beam search over Semantic IDs, constrained to the catalogue's real movies.

`SidTrie` stores the prefix tree of all SIDs as dense tables (prefix id x next code -> child prefix id),
so the constraint is a gather, not a Python walk. `ConstrainedBeamSearch` also removes the movies a
user has already rated: a prefix stays open only while at least one of its movies is still allowed for
that user, so every finished beam is a real, unseen movie and the top-k is never short.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import torch

NEG_INF = float("-inf")


class SidDecoder(Protocol):
    def level_logits(self, state: torch.Tensor, level: int) -> torch.Tensor:
        """(M, D) decoder states -> (M, V_level) logits of the next SID token."""

    def advance(self, state: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        """(M, D) states and (M,) chosen codes at `level` -> (M, D) states for the next level."""


class SidTrie:
    def __init__(self, sids: np.ndarray) -> None:
        """sids (N, T): the unique SID of every item index."""
        sids = np.asarray(sids, dtype=np.int64)
        if len(np.unique(sids, axis=0)) != len(sids):
            raise ValueError("SidTrie needs unique SIDs, one per item")
        self.num_items, self.depth = sids.shape
        self.vocab_sizes = [int(sids[:, k].max()) + 1 for k in range(self.depth)]
        prefix_ids = []  # per level: (N,) id of each item's prefix of length k + 1
        for k in range(self.depth):
            _, inverse = np.unique(sids[:, : k + 1], axis=0, return_inverse=True)
            prefix_ids.append(inverse.ravel())
        self.prefix_of_item = [torch.as_tensor(p) for p in prefix_ids]
        self.root = torch.full((self.vocab_sizes[0],), -1, dtype=torch.long)
        self.root[sids[:, 0]] = self.prefix_of_item[0]
        self.children = []  # per level k < T-1: (P_k, V_{k+1}) -> prefix id at level k + 1, or -1
        for k in range(self.depth - 1):
            table = torch.full((int(prefix_ids[k].max()) + 1, self.vocab_sizes[k + 1]), -1, dtype=torch.long)
            table[prefix_ids[k], sids[:, k + 1]] = self.prefix_of_item[k + 1]
            self.children.append(table)
        self.leaf_item = torch.empty(self.num_items, dtype=torch.long)
        self.leaf_item[self.prefix_of_item[-1]] = torch.arange(self.num_items)

    def to(self, device: torch.device | str) -> SidTrie:
        """Move the tables to `device` (where the model's states live); returns self."""
        self.prefix_of_item = [p.to(device) for p in self.prefix_of_item]
        self.children = [c.to(device) for c in self.children]
        self.root, self.leaf_item = self.root.to(device), self.leaf_item.to(device)
        return self

    def open_prefixes(self, allowed_items: torch.Tensor) -> list[torch.Tensor]:
        """(U, N) bool allowed items -> per level (U, P_k) bool: the prefix still leads to an allowed item."""
        counts = allowed_items.float()
        return [counts.new_zeros(len(counts), int(p.max()) + 1).index_add_(1, p, counts) > 0
                for p in self.prefix_of_item]


class BeamResult(NamedTuple):
    items: torch.Tensor  # (U, k) item indices, best first
    scores: torch.Tensor  # (U, k) sum of the SID tokens' log-probabilities


class ConstrainedBeamSearch:
    def __init__(self, trie: SidTrie, beam_size: int = 20) -> None:
        if beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {beam_size}")
        self.trie, self.beam_size = trie, beam_size

    @torch.no_grad()
    def __call__(self, model: SidDecoder, state: torch.Tensor, exclude: torch.Tensor, k: int) -> BeamResult:
        """Top-k movies for each of U users from decoder states (U, D); exclude (U, N) True = never."""
        trie, beam = self.trie, max(self.beam_size, k)
        open_at = trie.open_prefixes(~exclude.to(state.device))
        users = len(state)
        logp = torch.log_softmax(model.level_logits(state, 0).float(), dim=-1)  # (U, V0)
        candidate = trie.root[None].expand(users, -1)  # (U, V0) prefix ids
        scores, prefix, codes, source = self._select(logp, candidate, open_at[0], None, beam)
        states = model.advance(state.repeat_interleave(beam, 0), 0, codes.flatten())  # (U*B, D)
        for level in range(1, trie.depth):
            logp = torch.log_softmax(model.level_logits(states, level).float(), dim=-1)
            logp = logp.view(users, beam, -1)  # (U, B, V)
            candidate = trie.children[level - 1][prefix]  # (U, B, V)
            scores, prefix, codes, source = self._select(logp, candidate, open_at[level], scores, beam)
            parent = (source + torch.arange(users, device=source.device)[:, None] * beam).flatten()
            if level < trie.depth - 1:
                states = model.advance(states[parent], level, codes.flatten())
        if torch.isinf(scores[:, :k]).any():
            raise ValueError("a user has fewer allowed movies than k; lower k or exclude less")
        return BeamResult(trie.leaf_item[prefix[:, :k]], scores[:, :k])

    @staticmethod
    def _select(logp, candidate, open_prefixes, beam_scores, beam):
        """Keep the best `beam` open continuations: returns scores, prefix ids, codes and source beams."""
        users = len(open_prefixes)
        valid = candidate >= 0
        flat = candidate.clamp(min=0).reshape(users, -1)
        valid &= open_prefixes.gather(1, flat).view(candidate.shape)
        total = logp if beam_scores is None else beam_scores[..., None] + logp
        total = total.masked_fill(~valid, NEG_INF).reshape(users, -1)  # (U, [B *] V)
        width = min(beam, total.shape[1])
        scores, index = total.topk(width, dim=1)  # ties: torch.topk is deterministic on CPU
        vocab = logp.shape[-1]
        prefix = candidate.reshape(users, -1).gather(1, index)
        if width < beam:  # fewer continuations than beams: pad with dead beams
            pad = beam - width
            scores = torch.cat([scores, scores.new_full((users, pad), NEG_INF)], 1)
            index = torch.cat([index, index[:, :1].expand(-1, pad)], 1)
            prefix = torch.cat([prefix, prefix[:, :1].expand(-1, pad)], 1)
        return scores, prefix.clamp(min=0), index % vocab, index // vocab
