"""The generative-retrieval model: read a history of Semantic IDs, generate the next movie's SID.

Read top to bottom: config, SID head, model.

- An item enters as the sum of its SID tokens' embeddings (one table per level, i.e. per-level
  vocabularies) plus, optionally, a hashed user-id embedding (TIGER uses a user token).
- A causal transformer over items (`recsys.nets.backbone`) gives one state per position; each is trained to
  produce the next item's SID, so a whole sequence trains every position in one pass.
- The SID head generates the T tokens autoregressively: state_0 = h, logits_k = out_k(mlp_k(state_k)),
  state_{k+1} = state_k + emb_k(code_k) (or, head_advance "film", state_k * (1 + scale_k(code_k)) +
  emb_k(code_k)). Ranking scores every catalogue movie exactly through the trie
  (`recsys.nets.exact_scoring`), or runs `ConstrainedBeamSearch` over it for very large catalogues.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

from recsys.nets.backbone import BackboneConfig, Dropout, SequenceBackbone
from recsys.nets.decoding import NEG_INF, BeamResult, ConstrainedBeamSearch, SidTrie
from recsys.nets.exact_scoring import exact_topk

HEAD_ADVANCES = ("add", "film")
HEAD_SOFTMAXES = ("codebook", "children")
CHILD_FLOATS = 2**24  # largest (rows, children, D) gather of the head_nodes logits in one piece


@dataclass(kw_only=True)
class GenerativeConfig(BackboneConfig):
    vocab_sizes: tuple[int, ...]  # codes per SID level
    num_items: int  # catalogue size (rows of the item -> SID table)
    head_hidden: int = 0  # width of each level's MLP; 0 = 2 * d_model
    # How a chosen code moves the head's state. "add": state + emb(code), so the history's pull on the next
    # level's logits is the same under every prefix, and only the MLP mixes the two. "film": state *
    # (1 + scale(code)) + emb(code), a per-code rescaling of the history's features (starts as "add").
    head_advance: str = "add"
    # K > 0: at every level the head also attends to the history's last K states (a decoder that reads the
    # history, as TIGER's does, limited to a window so a prefix's state stays small for exact scoring).
    head_attend: int = 0
    # Each real child below a length-k prefix (k >= 1) gets its own output vector, added to its code's shared
    # one, and each level's softmax runs over the prefix's real children only: without it a code's output
    # vector is the same under every parent, although a residual code means something else under each.
    # Off here (the plain module's head, which a raw state row feeds); the pipeline's default turns it on
    # (`recsys.models.sid_generative.SidHeadConfig.head_nodes`).
    head_nodes: bool = False
    # Each level's softmax: over the whole codebook ("codebook"; the head must learn which codes exist below
    # each prefix), or over the prefix's real children only ("children"; what head_nodes implies).
    head_softmax: str = "codebook"
    # Also give each input item a learned id embedding: SIDs alone make movies that share a prefix look
    # alike to the encoder, however differently people watch them. Outputs stay SIDs either way.
    item_embedding: bool = True
    # Decoding: 0 = exact log p(item | history) for every catalogue movie (`recsys.nets.exact_scoring`); b > 0 =
    # constrained beam search of width b, for catalogues too large to score whole
    # (bench/results/exact-vs-beam-*.json).
    beam_size: int = 0

    @property
    def children_softmax(self) -> bool:
        """The softmax runs over each prefix's real children (the state rows then carry the prefix's id)."""
        return self.head_nodes or self.head_softmax == "children"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.beam_size, int) or self.beam_size < 0:
            raise ValueError(f"GenerativeConfig.beam_size must be 0 (exact) or a positive width, "
                             f"got {self.beam_size!r}")
        self.vocab_sizes = tuple(int(v) for v in self.vocab_sizes)
        if not self.vocab_sizes or min(self.vocab_sizes) < 1:
            raise ValueError(f"GenerativeConfig.vocab_sizes must list >= 1 code per level, got {self.vocab_sizes}")
        if self.num_items < 1:
            raise ValueError(f"GenerativeConfig.num_items must be >= 1, got {self.num_items}")
        if not isinstance(self.head_hidden, int) or self.head_hidden < 0:
            raise ValueError(f"GenerativeConfig.head_hidden must be an integer >= 0, got {self.head_hidden!r}")
        if not isinstance(self.head_attend, int) or not 0 <= self.head_attend <= self.max_len:
            raise ValueError(f"GenerativeConfig.head_attend must be an integer in [0, max_len], "
                             f"got {self.head_attend!r}")
        if not isinstance(self.head_nodes, bool):
            raise ValueError(f"GenerativeConfig.head_nodes must be true or false, got {self.head_nodes!r}")
        if self.head_softmax not in HEAD_SOFTMAXES:
            raise ValueError(f"GenerativeConfig.head_softmax must be one of {HEAD_SOFTMAXES}, "
                             f"got {self.head_softmax!r}")
        if self.head_advance not in HEAD_ADVANCES:
            raise ValueError(f"GenerativeConfig.head_advance must be one of {HEAD_ADVANCES}, got {self.head_advance!r}")


class ChildTables(NamedTuple):
    """The catalogue's SID tree as the head reads it, per level k (P_{-1} = 1: the empty prefix)."""

    step: list[torch.Tensor]  # (P_{k-1}, V_k): prefix id after code c below prefix p, -1 = no movie has it
    codes: list[torch.Tensor]  # (P_{k-1}, C_k): the real children's codes, padded with -1
    rows: list[torch.Tensor]  # (P_{k-1}, C_k): each child's row in the level's node table (its first movie)
    child: list[torch.Tensor]  # (P_{k-1}, C_k): each child's prefix id at level k, -1 = padding

    @classmethod
    def from_trie(cls, trie: SidTrie, widths: tuple[int, ...]) -> ChildTables:
        step = [F.pad(t, (0, w - t.shape[1]), value=-1) for t, w in zip([trie.root[None], *trie.children], widths,
                                                                         strict=True)]
        items = torch.arange(trie.num_items, device=trie.root.device)
        first = [torch.full((int(p.max()) + 1,), trie.num_items, device=p.device).scatter_reduce(0, p, items, "amin")
                 for p in trie.prefix_of_item]  # per level: (P_k,) lowest item index below each prefix
        codes, rows, child = [], [], []
        for k, table in enumerate(step):
            real = table >= 0
            order = torch.sort((~real).to(torch.int8), dim=1, stable=True).indices[:, :int(real.sum(1).max())]
            kept = real.gather(1, order)  # (P_{k-1}, C_k)
            codes.append(torch.where(kept, order, -1))
            child.append(table.gather(1, order))
            rows.append(torch.where(kept, first[k][child[-1].clamp(min=0)], 0))
        return cls(step, codes, rows, child)

    def live(self, trie: SidTrie, existing: torch.Tensor) -> list[torch.Tensor]:
        """(N,) bool movies that exist at training time -> per level (P_{k-1}, C_k): the child leads to one."""
        out = []
        for k, child in enumerate(self.child):
            prefix = trie.prefix_of_item[k]
            has = torch.zeros(int(prefix.max()) + 1, dtype=torch.bool, device=prefix.device)
            has[prefix[existing]] = True
            out.append((child >= 0) & has[child.clamp(min=0)])
        return out


class SidHead(nn.Module):
    """Generates one SID token per level from a state that accumulates the tokens chosen so far.

    A state row is (D) or, with head_attend K > 0, (D + 2 K D + K): the prefix state followed by the keys
    and values of the history's last K states (`memory`), which `advance` carries along unchanged and
    each level attends to; with the children softmax, one more column: the prefix's id in the tree
    (`ChildTables`), which `advance` moves to the chosen child."""

    def __init__(self, config: GenerativeConfig) -> None:
        super().__init__()
        d, hidden = config.d_model, config.head_hidden or 2 * config.d_model
        self.d_model, self.window, self.heads = d, config.head_attend, config.n_heads
        if self.window:
            # The history's K states are projected to keys and values once per user (`memory`); each level
            # only projects its query, so a prefix row costs O(K * D) more, not O(K * D^2).
            self.memory_norm = nn.LayerNorm(d)
            self.keys, self.values = nn.Linear(d, d), nn.Linear(d, d)
            self.query_norm = nn.ModuleList(nn.LayerNorm(d) for _ in config.vocab_sizes)
            self.query = nn.ModuleList(nn.Linear(d, d) for _ in config.vocab_sizes)
            self.context = nn.ModuleList(nn.Linear(d, d) for _ in config.vocab_sizes)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), Dropout(config.dropout),
                          nn.Linear(hidden, d))
            for _ in config.vocab_sizes
        )
        self.out = nn.ModuleList(nn.Linear(d, v) for v in config.vocab_sizes)
        # No embedding for the last level's code: nothing is generated after it (and DDP refuses parameters
        # that never receive a gradient).
        self.code = nn.ModuleList(nn.Embedding(v, d) for v in config.vocab_sizes[:-1])
        self.over_children, self.nodes = config.children_softmax, None
        self.tables: ChildTables | None = None  # set by the model before each use (`SidGenerativeModel`)
        if config.head_nodes:
            self.nodes = nn.ModuleList(nn.Embedding(config.num_items, d) for _ in config.vocab_sizes[1:])
            for table in self.nodes:
                nn.init.zeros_(table.weight)  # starts as the shared code vectors alone
        self.scale = None
        if config.head_advance == "film":
            self.scale = nn.ModuleList(nn.Embedding(v, d) for v in config.vocab_sizes[:-1])
            for table in self.scale:
                nn.init.zeros_(table.weight)  # starts as "add"

    def memory(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states, (B, L) items (PAD = -1) -> (B, L, 2 K D + K): at each position, the keys and
        values of the K newest states up to it (oldest first) and a 1/0 real-state flag per slot, the part of
        a state row that `advance` carries unchanged. Each position is projected once, then windowed."""
        window, real = self.window, (items >= 0).to(h.dtype)  # (B, L)
        normed = self.memory_norm(h)
        parts = [self.keys(normed) * real[..., None], self.values(normed) * real[..., None]]  # (B, L, D) each
        windows = [F.pad(x, (0, 0, window - 1, 0)).unfold(1, window, 1).transpose(2, 3).flatten(-2)
                   for x in parts]  # (B, L, K * D) each
        flags = F.pad(real, (window - 1, 0)).unfold(1, window, 1)  # (B, L, K)
        return torch.cat([*windows, flags], dim=-1)

    def _split(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A state row -> its prefix state (M, D), memory (M, 2 K D + K) and, with the children softmax, the
        prefix's id (M,)."""
        if not self.over_children:
            return state[:, :self.d_model], state[:, self.d_model:], None
        return state[:, :self.d_model], state[:, self.d_model:-1], state[:, -1].long()

    def level_logits(self, state: torch.Tensor, level: int) -> torch.Tensor:
        return self._logits(*self._split(state), level)  # (M, V_level)

    def _logits(self, prefix: torch.Tensor, memory: torch.Tensor, node: torch.Tensor | None,
                level: int, live: list[torch.Tensor] | None = None) -> torch.Tensor:
        if self.window:
            prefix = prefix + self._attend(prefix, memory, level)
        features = prefix + self.mlps[level](prefix)  # (M, D)
        logits = self.out[level](features)  # (M, V)
        if node is None:
            return logits
        return self._child_logits(logits, features, node, level, None if live is None else live[level])

    def _child_logits(self, logits: torch.Tensor, features: torch.Tensor, node: torch.Tensor, level: int,
                      live: torch.Tensor | None = None) -> torch.Tensor:
        """Shared code logits (M, V) -> the same plus each real child's own vector, -inf off the children
        (and off the children of `live` (P_{k-1}, C_k) False: no movie below them exists in training)."""
        codes, rows = self.tables.codes[level][node], self.tables.rows[level][node]  # (M, C)
        real = codes >= 0 if live is None else live[node]
        values = logits.gather(1, codes.clamp(min=0))  # (M, C)
        if level > 0 and self.nodes is not None:  # level 0's children are the codes: out[0] is per child
            step = max(1, CHILD_FLOATS // (codes.shape[1] * self.d_model))
            own = [torch.einsum("md,mcd->mc", f, self.nodes[level - 1](r))
                   for f, r in zip(features.split(step), rows.split(step), strict=True)]
            values = values + torch.cat(own)
        values = values.masked_fill(~real, NEG_INF)
        # amax: a padded slot (-inf at code 0) never overwrites a real child with code 0
        return torch.full_like(logits, NEG_INF).scatter_reduce(1, codes.clamp(min=0), values, "amax")

    def _attend(self, prefix: torch.Tensor, memory: torch.Tensor, level: int) -> torch.Tensor:
        """Multi-head attention of the prefix state (M, D) over the K memory slots -> (M, D)."""
        rows, window, heads, d = len(prefix), self.window, self.heads, self.d_model
        span = window * d
        keys = memory[:, :span].view(rows, window, heads, d // heads)  # (M, K, H, D/H)
        values = memory[:, span:2 * span].view(rows, window, heads, d // heads)
        real = memory[:, 2 * span:] > 0  # (M, K)
        query = self.query[level](self.query_norm[level](prefix)).view(rows, heads, d // heads)  # (M, H, D/H)
        scores = torch.einsum("mhd,mkhd->mhk", query, keys) * (d // heads) ** -0.5
        weights = scores.masked_fill(~real[:, None, :], float("-inf")).softmax(dim=-1)  # (M, H, K)
        return self.context[level](torch.einsum("mhk,mkhd->mhd", weights, values).reshape(rows, d))

    def advance(self, state: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        prefix, memory, node = self._split(state)
        parts = [self._advance(prefix, level, codes)] + ([memory] if self.window else [])
        if node is not None:
            parts.append(self._child(node, level, codes).to(state.dtype)[:, None])
        return torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]

    def _child(self, node: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        """(M,) prefix ids and the codes chosen below them -> (M,) the children's ids (0 where none is real)."""
        return self.tables.step[level][node, codes].clamp(min=0)

    def _advance(self, prefix: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        if self.scale is not None:
            prefix = prefix * (1 + self.scale[level](codes))
        return prefix + self.code[level](codes)

    def teacher_forced_loss(self, state: torch.Tensor, target_sids: torch.Tensor,
                            live: list[torch.Tensor] | None = None) -> torch.Tensor:
        """-log p(item) = sum over levels of -log p(code_k | code_<k), averaged over rows; with the children
        softmax and `live` (`ChildTables.live`), each over the children that lead to a training movie.

        The sum (not the mean over levels) is the item's negative log-likelihood, the same quantity the
        dense model's softmax minimises, so both models train at the same learning rate.
        """
        loss = state.new_zeros(())
        last = target_sids.shape[1] - 1
        prefix, memory, node = self._split(state)  # the memory is split off once
        for level in range(last + 1):
            loss = loss + F.cross_entropy(self._logits(prefix, memory, node, level, live), target_sids[:, level])
            if level < last:
                prefix = self._advance(prefix, level, target_sids[:, level])
                node = None if node is None else self._child(node, level, target_sids[:, level])
        return loss


class SidGenerativeModel(nn.Module, PyTorchModelHubMixin):
    def __init__(self, config: GenerativeConfig | dict, item_sids: np.ndarray | None = None) -> None:
        super().__init__()
        if isinstance(config, dict):  # from_pretrained passes config.json back as a dict
            config = GenerativeConfig(**config)
        self.config = config
        shape = (config.num_items, len(config.vocab_sizes))
        sids = torch.zeros(shape, dtype=torch.long) if item_sids is None else torch.as_tensor(np.array(item_sids))
        if tuple(sids.shape) != shape or (sids.max(0).values >= torch.tensor(config.vocab_sizes)).any():
            raise ValueError(f"item_sids must be {shape} with codes below vocab_sizes {config.vocab_sizes}")
        self.register_buffer("item_sids", sids.long())  # (N, T), saved with the weights
        self.token = nn.ModuleList(nn.Embedding(v, config.d_model) for v in config.vocab_sizes)
        self.item = nn.Embedding(config.num_items, config.d_model) if config.item_embedding else None
        self.backbone = SequenceBackbone(config)
        self.head = SidHead(config)
        self._trie: SidTrie | None = None
        self._tables: tuple[SidTrie, ChildTables] | None = None

    def embed_items(self, items: torch.Tensor) -> torch.Tensor:
        """(B, L) item indices (PAD = -1) -> (B, L, D): sum of the item's SID token (and id) embeddings."""
        sids = self.item_sids[items.clamp(min=0)]  # (B, L, T)
        x = sum(table(sids[..., k]) for k, table in enumerate(self.token))
        return x if self.item is None else x + self.item(items.clamp(min=0))

    def hidden(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) left-padded histories -> (B, L, D) states; state t is trained to predict item t + 1."""
        x = self.embed_items(items)
        return self.backbone(x, items < 0, users)

    def head_states(self, h: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, L, D) states -> (B, L, D') the head's input rows: h, or with head_attend K, h followed by
        the memory (`SidHead.memory`) of the K newest states up to each position; with the children
        softmax, then the empty prefix's id (0)."""
        if self.config.children_softmax:
            h = h.float()  # the rows carry prefix ids, exact in float32 (not in 16-bit floats)
        parts = [h] + ([self.head.memory(h, items)] if self.config.head_attend else [])
        if self.config.children_softmax:  # the empty prefix's id, and the tree the head reads (`ChildTables`)
            parts.append(h.new_zeros(*h.shape[:-1], 1))
            self.head.tables = self.child_tables()
        return torch.cat(parts, dim=-1) if len(parts) > 1 else h

    def decoder_state(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) histories -> (B, D') the head's input row for the next item."""
        return self.head_states(self.hidden(items, users), items)[:, -1]

    def loss(self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor | None = None,
             existing: torch.Tensor | None = None) -> torch.Tensor:
        """Next-SID cross-entropy at every position with a real input and a real target.

        `existing` (the movies that exist at training time) changes nothing in a codebook softmax, whose
        codes movies added later share with the existing ones; with the children softmax, the children
        that lead to no existing movie are left out of it, so their own vectors are never pushed down."""
        states = self.head_states(self.hidden(inputs, users), inputs)  # (B, L, D')
        keep = (inputs >= 0) & (targets >= 0)
        return self.head.teacher_forced_loss(states[keep], self.item_sids[targets[keep]], self.live(existing))

    def live(self, existing: torch.Tensor | None) -> list[torch.Tensor] | None:
        """Children softmax: per level, which children lead to a movie of `existing` (None: all of them)."""
        if existing is None or not self.config.children_softmax:
            return None
        return self.child_tables().live(self.trie(), existing)

    def level_logits(self, state: torch.Tensor, level: int) -> torch.Tensor:
        return self.head.level_logits(state, level)

    def advance(self, state: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        return self.head.advance(state, level, codes)

    @torch.no_grad()
    def diagnostics(self, items: torch.Tensor, targets: torch.Tensor,
                    users: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Per-row figures for predicting `targets` (B,) from histories (B, L), history not masked.

        - nll: -log p(item) = sum over levels of -log p(c_k | c_<k), nats (comparable with the dense model's)
        - nll/level<k>: that level's share, the true prefix given (teacher-forced)
        - acc/level<k>: the level's most likely code is the true one, the true prefix given
        - greedy/level<k>: greedy decoding from the model's own codes gets the first k codes all right
          (generated; not constrained to the trie)
        """
        state = self.decoder_state(items, users)  # (B, D')
        sids = self.item_sids[targets]  # (B, T)
        forced, generated = state, state
        prefix_right = torch.ones(len(targets), dtype=torch.bool, device=state.device)
        figures: dict[str, torch.Tensor] = {"nll": state.new_zeros(len(targets))}
        last = sids.shape[1] - 1
        for level in range(last + 1):
            log_probs = F.log_softmax(self.level_logits(forced, level), dim=-1)  # (B, V_level)
            nll = -log_probs.gather(1, sids[:, level:level + 1]).squeeze(1)
            choice = self.level_logits(generated, level).argmax(dim=-1)  # (B,)
            prefix_right &= choice == sids[:, level]
            figures["nll"] = figures["nll"] + nll
            figures[f"nll/level{level + 1}"] = nll
            figures[f"acc/level{level + 1}"] = (log_probs.argmax(dim=-1) == sids[:, level]).float()
            figures[f"greedy/level{level + 1}"] = prefix_right.float()
            if level < last:
                forced = self.advance(forced, level, sids[:, level])
                generated = self.advance(generated, level, choice)
        return figures

    def child_tables(self) -> ChildTables:
        """The tree's tables for the children softmax, built once per trie (so once per device)."""
        trie = self.trie()
        if self._tables is None or self._tables[0] is not trie:
            self._tables = (trie, ChildTables.from_trie(trie, self.config.vocab_sizes))
        return self._tables[1]

    def trie(self) -> SidTrie:
        """The catalogue's SID prefix tree, on the model's device (rebuilt after a move, e.g. off the GPU)."""
        if self._trie is None or self._trie.root.device != self.item_sids.device:
            self._trie = SidTrie(self.item_sids.cpu().numpy()).to(self.item_sids.device)
        return self._trie

    @torch.no_grad()
    def recommend(self, items: torch.Tensor, exclude: torch.Tensor, k: int,
                  users: torch.Tensor | None = None) -> BeamResult:
        """Top-k unseen, real movies for each history (B, L): exact scoring, or beam search (config.beam_size)."""
        device = self.item_sids.device
        state = self.decoder_state(items.to(device), None if users is None else users.to(device))  # (B, D')
        if self.config.beam_size == 0:
            return exact_topk(self, state, self.trie(), exclude.to(device), k)
        return ConstrainedBeamSearch(self.trie(), self.config.beam_size)(self, state, exclude, k)
