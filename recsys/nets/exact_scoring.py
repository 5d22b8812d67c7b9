"""Exact full-catalogue scoring of a SID decoder: log p(item | history) for every movie, no beam.

The SID head factorises an item's probability over its T tokens c_0 .. c_{T-1}:

    log p(item | h) = sum_k log_softmax(level_logits(s_k, k))[c_k],
    s_0 = h,  s_{k+1} = advance(s_k, k, c_k).

s_k depends only on the item's first k tokens, so the head is evaluated once per distinct prefix, not
once per item: level k needs one head call on the P_{k-1} states of the distinct length-k prefixes
(P_{-1} = 1, the empty prefix), each built by advancing its parent's state with its last code. Each
length-(k+1) prefix then scores   cum_k[q] = cum_{k-1}[parent(q)] + logp_k[parent(q), code(q)],
and an item's score is cum_{T-1} at its full SID. The cost is 1 + sum_{k<T-1} P_k head rows per user
(1.66 N for 3,883 random 64-code SIDs, 1.55 N for 87,585 random 256-code ones), against about B * T for
a beam of width B: ~100x a beam's work for ML-1M, ~2,000x for ML-32M (see bench/exact_vs_beam.py).

Memory: users are scored in chunks so that the largest intermediate, chunk_users * P * max(D, hidden, V)
floats, stays under MEMORY_BUDGET_BYTES; a single user above the budget has its head calls chunked by rows.

Pruning (`pruned_exact_topk`, what `exact_topk` runs by default): log-probabilities are <= 0, so a
prefix's cumulative score bounds every item below it. A constrained beam search gives k allowed items,
whose k-th score tau is a lower bound on the true k-th best; the head then runs only on (user, prefix)
pairs that are still open and score >= tau - slack. Same ranking as `full_exact_topk`, a fraction of the
head rows when the head knows which codes exist below each prefix, as a trained one does: for 3,883
movies, 257 rows per user (61 of them the beam's) instead of 6,454 and 11-15x the users/s on a head fitted
to a teacher, but 3,700 rows and 1.5x on an untrained one (bench/exact_vs_beam.py --fit-head).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from recsys.nets.decoding import NEG_INF, BeamResult, ConstrainedBeamSearch, SidDecoder, SidTrie

MEMORY_BUDGET_BYTES = 256 * 2**20  # largest intermediate tensor of one chunk (float32)
FLOAT_BYTES = 4
BEAM_SIZE = 20  # width of the bounding beam search of pruned_exact_topk (at least k)
SLACK = 1e-4  # float32 rounding allowance between the beam's scores and the exact pass's


class PrefixLinks(NamedTuple):
    parent: torch.Tensor  # (P_k,) id of each length-(k+1) prefix's length-k prefix (0 = empty prefix at k = 0)
    code: torch.Tensor  # (P_k,) each length-(k+1) prefix's last code c_k


def prefix_links(trie: SidTrie) -> list[PrefixLinks]:
    """Per level k, every length-(k+1) prefix's parent prefix id and last code, read off the trie tables.

    Level 0: `root` maps code -> prefix id, so the parent is the empty prefix (id 0). Level k >= 1: the
    non-negative entries (p, c) of `children[k-1]` are exactly the prefixes, with parent p and code c.
    """
    known = trie.root >= 0
    codes = torch.arange(len(trie.root), device=trie.root.device)[known]
    links = [_by_prefix_id(trie.root[known], torch.zeros_like(codes), codes)]
    for table in trie.children:
        parent, code = torch.nonzero(table >= 0, as_tuple=True)
        links.append(_by_prefix_id(table[parent, code], parent, code))
    return links


def _by_prefix_id(ids: torch.Tensor, parent: torch.Tensor, code: torch.Tensor) -> PrefixLinks:
    """Place (parent, code) at position `ids`, so that row q describes prefix q."""
    out_parent, out_code = torch.empty_like(parent), torch.empty_like(code)
    out_parent[ids], out_code[ids] = parent, code
    return PrefixLinks(out_parent, out_code)


def head_sizes(model: SidDecoder, trie: SidTrie, d_model: int) -> tuple[int, list[int]]:
    """The head's MLP width and logit width per level, for the memory bound: from `model.config` when it
    has them (head_hidden 0 = 2 * d_model), else 2 * d_model and the trie's vocabularies."""
    config = getattr(model, "config", None)
    vocab = list(getattr(config, "vocab_sizes", ()) or trie.vocab_sizes)
    return int(getattr(config, "head_hidden", 0) or 2 * d_model), [int(v) for v in vocab]


def users_per_chunk(links: list[PrefixLinks], vocab_sizes: list[int], d_model: int, hidden: int,
                    budget_bytes: int = MEMORY_BUDGET_BYTES) -> int:
    """Most users whose largest per-level intermediate fits in the budget (at least 1)."""
    rows = [1] + [len(link.parent) for link in links[:-1]]  # head rows at level k: P_{k-1}
    per_user = max(max(r * max(d_model, hidden, v), len(link.parent) * d_model)
                   for r, v, link in zip(rows, vocab_sizes, links, strict=True))
    return max(1, budget_bytes // (FLOAT_BYTES * per_user))


def child_masks(trie: SidTrie, widths: list[int]) -> list[torch.Tensor]:
    """Per level k, (P_{k-1}, V_k) bool: code c exists below length-k prefix p (P_{-1} = 1, the empty
    prefix), padded with False to the logit widths."""
    tables = [trie.root[None], *trie.children]
    return [F.pad(table >= 0, (0, width - table.shape[1]), value=False) for table, width in zip(tables, widths,
                                                                                                  strict=True)]


@torch.no_grad()
def item_log_probs(model: SidDecoder, state: torch.Tensor, trie: SidTrie,
                   budget_bytes: int = MEMORY_BUDGET_BYTES, children_only: bool = False) -> torch.Tensor:
    """(U, D) decoder states -> (U, N) float32 log p(item | history) of every catalogue item, exactly.

    log p(item) = sum_k log_softmax(level_logits(s_k, k))[c_k], evaluated once per distinct prefix.
    children_only: each level's softmax runs over the codes that exist below the prefix only (the
    probability a head puts on codes no movie has is given back to the real ones).
    """
    device, d_model = state.device, state.shape[1]
    links = [PrefixLinks(p.to(device), c.to(device)) for p, c in prefix_links(trie)]
    hidden, vocab = head_sizes(model, trie, d_model)
    chunk = users_per_chunk(links, vocab, d_model, hidden, budget_bytes)
    rows = max(1, budget_bytes // (FLOAT_BYTES * max(d_model, hidden, *vocab)))  # head rows per call
    leaf = trie.prefix_of_item[-1].to(device)  # (N,) full-SID prefix id of each item
    masks = [m.to(device) for m in child_masks(trie, vocab)] if children_only else None
    scores = [_prefix_scores(model, part, links, rows, masks)[:, leaf] for part in state.split(chunk)]
    return torch.cat(scores) if scores else state.new_zeros(0, trie.num_items, dtype=torch.float32)


def _prefix_scores(model: SidDecoder, state: torch.Tensor, links: list[PrefixLinks], max_rows: int,
                   masks: list[torch.Tensor] | None = None) -> torch.Tensor:
    """(U, D) states -> (U, P_{T-1}) cumulative log-probability of every full-length prefix."""
    users, d_model = state.shape
    states = state[:, None]  # (U, 1, D): the empty prefix
    cum = torch.zeros(users, 1, dtype=torch.float32, device=state.device)  # (U, P_{k-1})
    for level, link in enumerate(links):
        if level > 0:  # states of the length-k prefixes: parent state advanced with the last code
            parent, code = links[level - 1]
            flat = states[:, parent].reshape(-1, d_model)  # (U * P_{k-1}, D)
            states = model.advance(flat, level - 1, code.repeat(users)).view(users, len(parent), d_model)
        logp = _gathered_log_probs(model, states, level, link, max_rows, None if masks is None else masks[level])
        cum = cum[:, link.parent] + logp
    return cum


def _gathered_log_probs(model: SidDecoder, states: torch.Tensor, level: int, link: PrefixLinks,
                        max_rows: int, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(U, R, D) prefix states -> (U, P_k): log_softmax(level_logits)[parent(q), code(q)] per child q,
    the softmax over the codes of `mask` (R, V_k) only when given.

    One head call on (U * R, D) when it fits in `max_rows` rows; otherwise chunks of parent prefixes.
    """
    users, parents = states.shape[:2]
    step = max(1, max_rows // users)
    if step >= parents:
        return _head_log_probs(model, states, level, mask)[:, link.parent, link.code]
    out = torch.empty(users, len(link.parent), dtype=torch.float32, device=states.device)
    for start in range(0, parents, step):
        part = None if mask is None else mask[start:start + step]
        logp = _head_log_probs(model, states[:, start:start + step], level, part)  # (U, r, V_k)
        mine = (link.parent >= start) & (link.parent < start + step)
        out[:, mine] = logp[:, link.parent[mine] - start, link.code[mine]]
    return out


def _head_log_probs(model: SidDecoder, states: torch.Tensor, level: int,
                    mask: torch.Tensor | None = None) -> torch.Tensor:
    """(U, R, D) states -> (U, R, V_k) float32 log-softmax of level k's logits, in one head call; over
    the codes of `mask` (R, V_k) only, when given."""
    users, rows, d_model = states.shape
    logits = model.level_logits(states.reshape(-1, d_model), level).float().view(users, rows, -1)
    if mask is not None:
        logits = logits.masked_fill(~mask, NEG_INF)
    return torch.log_softmax(logits, dim=-1)


def _checked_exclude(state: torch.Tensor, trie: SidTrie, exclude: torch.Tensor, k: int) -> torch.Tensor:
    """exclude on the states' device, after checking its shape and that every user has >= k allowed items."""
    exclude = exclude.to(state.device)
    if exclude.shape != (len(state), trie.num_items):
        raise ValueError(f"exclude must be {(len(state), trie.num_items)}, got {tuple(exclude.shape)}")
    if len(state) and int((~exclude).sum(1).min()) < k:
        raise ValueError("a user has fewer allowed movies than k; lower k or exclude less")
    return exclude


def _ranked(scores: torch.Tensor, exclude: torch.Tensor, k: int) -> BeamResult:
    """(U, N) item scores -> top k with excluded items at -inf: a stable descending sort, so ties go to
    the lower item index (the one tie rule of every exact top-k here)."""
    values, items = torch.sort(scores.masked_fill(exclude, NEG_INF), dim=1, descending=True, stable=True)
    return BeamResult(items[:, :k], values[:, :k])


@torch.no_grad()
def full_exact_topk(model: SidDecoder, state: torch.Tensor, trie: SidTrie, exclude: torch.Tensor, k: int,
                    budget_bytes: int = MEMORY_BUDGET_BYTES) -> BeamResult:
    """Exact top-k by scoring every item (`item_log_probs`): the reference `pruned_exact_topk` must equal.

    (U, D) states, exclude (U, N) True = never -> BeamResult (U, k). Excluded items score -inf; ranking is
    a stable descending sort, so ties go to the lower item index.
    """
    exclude = _checked_exclude(state, trie, exclude, k)
    return _ranked(item_log_probs(model, state, trie, budget_bytes), exclude, k)


@torch.no_grad()
def exact_topk(model: SidDecoder, state: torch.Tensor, trie: SidTrie, exclude: torch.Tensor, k: int,
               budget_bytes: int = MEMORY_BUDGET_BYTES, prune: bool = True) -> BeamResult:
    """Exact top-k items per user: (U, D) states, exclude (U, N) True = never -> BeamResult (U, k).

    Excluded items score -inf; ties go to the lower item index. prune=True: `pruned_exact_topk` (same
    result, far fewer head rows on a trained model); prune=False: `full_exact_topk`.
    """
    if prune:
        return pruned_exact_topk(model, state, trie, exclude, k, budget_bytes=budget_bytes)
    return full_exact_topk(model, state, trie, exclude, k, budget_bytes)


@dataclass
class PruneStats:
    """Counters `pruned_exact_topk` adds to; pass the same one to several calls to total them."""

    users: int = 0
    beam_rows: int = 0  # head rows of the bounding beam search: 1 + B * (T - 1) per user
    head_rows: list[int] = field(default_factory=list)  # per level k: (user, length-k prefix) pairs scored
    fallback_users: int = 0  # users re-scored in full because their bound was not certified

    def rows_per_user(self) -> float:
        """All head rows (beam and pruned pass) per user."""
        return (self.beam_rows + sum(self.head_rows)) / max(1, self.users)


@torch.no_grad()
def pruned_exact_topk(model: SidDecoder, state: torch.Tensor, trie: SidTrie, exclude: torch.Tensor, k: int,
                      beam_size: int = BEAM_SIZE, slack: float = SLACK, budget_bytes: int = MEMORY_BUDGET_BYTES,
                      stats: PruneStats | None = None) -> BeamResult:
    """Exact top-k, equal to `full_exact_topk` (items; scores up to float rounding), scoring only the
    prefixes that can still reach the top k. (U, D) states, exclude (U, N) True = never -> BeamResult (U, k).

    Rule: a constrained beam of width max(beam_size, k) finds k allowed items; tau_u, the k-th of their
    scores, is <= the true k-th best. Log-probabilities are <= 0, so an item scores at most any of its
    prefixes: the head runs on a prefix's state only when the prefix is open (leads to an allowed item)
    and its own cumulative score, known from its parent's head call, is >= tau_u - slack; the items
    below any other prefix are -inf. Every allowed item scoring >= tau_u - slack is then
    scored exactly, and ranked by the same stable sort (ties to the lower item index). The result is
    certified when the k-th score found is >= tau_u - slack (nothing pruned can reach it); a user for whom
    it is not (rounding beyond `slack`, e.g. a 16-bit model) is re-scored in full, so it is always exact.

    Prefix states are built by `model.advance` on the parent's state, pair by pair: no assumption that
    advance is additive. Users go in chunks whose worst case (nothing pruned) fits in `budget_bytes`.
    """
    exclude = _checked_exclude(state, trie, exclude, k)
    stats = PruneStats() if stats is None else stats
    if not len(state) or k < 1:
        empty = torch.zeros(len(state), max(k, 0), device=state.device)
        return BeamResult(empty.long(), empty)
    device, d_model = state.device, state.shape[1]
    links = [PrefixLinks(p.to(device), c.to(device)) for p, c in prefix_links(trie)]
    widths = [model.level_logits(state[:1], level).shape[-1] for level in range(trie.depth)]
    hidden, _ = head_sizes(model, trie, d_model)
    rows = max(1, budget_bytes // (FLOAT_BYTES * max(d_model, hidden, *widths)))  # head rows per call
    per_user = max(len(link.parent) for link in links) * (d_model + max(widths) + 8)  # floats, nothing pruned
    chunk = max(1, budget_bytes // (FLOAT_BYTES * per_user))
    search = ConstrainedBeamSearch(_search_trie(trie, widths, device), max(beam_size, k))
    parts = [_pruned_chunk(model, s, search, links, ex, k, slack, rows, budget_bytes, stats)
             for s, ex in zip(state.split(chunk), exclude.split(chunk), strict=True)]
    return BeamResult(torch.cat([p.items for p in parts]), torch.cat([p.scores for p in parts]))


def _search_trie(trie: SidTrie, widths: list[int], device: torch.device) -> SidTrie:
    """A copy of the trie on `device` whose code tables are padded (-1 = no child) to the logit widths,
    for logits wider than the codes in use (ConstrainedBeamSearch needs them equal). The input is kept."""
    if any(w < v for w, v in zip(widths, trie.vocab_sizes, strict=True)):
        raise ValueError(f"the model's logits {widths} are narrower than the trie's codes {trie.vocab_sizes}")
    out = copy.copy(trie).to(device)  # .to rebinds the copy's tables, not the original's
    out.root = F.pad(out.root, (0, widths[0] - len(out.root)), value=-1)
    out.children = [F.pad(table, (0, width - table.shape[1]), value=-1)
                    for table, width in zip(out.children, widths[1:], strict=True)]
    return out


def _pruned_chunk(model: SidDecoder, state: torch.Tensor, search: ConstrainedBeamSearch, links: list[PrefixLinks],
                  exclude: torch.Tensor, k: int, slack: float, max_rows: int, budget_bytes: int,
                  stats: PruneStats) -> BeamResult:
    """One chunk of users: bound by the beam, pruned exact pass, rank, and full re-scoring if uncertified."""
    trie = search.trie
    floor = search(model, state, exclude, k).scores[:, k - 1] - slack  # (U,) tau_u - slack
    cum, rows = _surviving_leaf_scores(model, state, links, trie.open_prefixes(~exclude), floor, max_rows)
    result = _ranked(cum[:, trie.prefix_of_item[-1]], exclude, k)  # (U, P_{T-1}) -> items
    unsure = result.scores[:, -1] < floor  # (U,) something pruned might have reached the top k
    if unsure.any():
        full = _ranked(item_log_probs(model, state[unsure], trie, budget_bytes), exclude[unsure], k)
        result.items[unsure], result.scores[unsure] = full.items, full.scores
    stats.users += len(state)
    stats.beam_rows += len(state) * (1 + search.beam_size * (trie.depth - 1))
    stats.head_rows = [a + b for a, b in zip(stats.head_rows or [0] * len(rows), rows, strict=True)]
    stats.fallback_users += int(unsure.sum())
    return result


def _surviving_leaf_scores(model: SidDecoder, state: torch.Tensor, links: list[PrefixLinks],
                           open_at: list[torch.Tensor], floor: torch.Tensor,
                           max_rows: int) -> tuple[torch.Tensor, list[int]]:
    """(U, D) states -> (U, P_{T-1}) float32 score of every full SID (-inf where pruned), head rows per level.

    Level k scores the flat batch of live (user, length-k prefix) pairs, M_k rows (M_0 = U): one head
    call (chunked by rows), then each length-(k+1) prefix q takes cum[parent(q)] + logp[row, code(q)]
    where its parent is live, as `_prefix_scores` does. A prefix stays live while it is open and scores
    >= floor_u; its state is its parent's, advanced by its last code.
    """
    users, device = len(state), state.device
    states = state  # (M_k, D) state of each live pair
    row_of = torch.arange(users, device=device)[:, None]  # (U, P_{k-1}): row in `states`, -1 = pruned
    cum = torch.zeros(users, 1, dtype=torch.float32, device=device)  # (U, P_{k-1})
    counts = []
    for level, link in enumerate(links):
        counts.append(len(states))
        rows = row_of[:, link.parent]  # (U, P_k) row of each prefix's parent
        if len(states):
            logp = _flat_log_probs(model, states, level, max_rows)  # (M_k, V_k)
            cum = torch.where(rows >= 0, cum[:, link.parent] + logp[rows.clamp(min=0), link.code], NEG_INF)
        else:
            cum = torch.full(rows.shape, NEG_INF, device=device)
        if level == len(links) - 1:
            return cum, counts
        user, prefix = torch.nonzero(open_at[level] & (cum >= floor[:, None]), as_tuple=True)  # (M_{k+1},)
        states = model.advance(states[row_of[user, link.parent[prefix]]], level, link.code[prefix])
        row_of = torch.full(cum.shape, -1, dtype=torch.long, device=device)
        row_of[user, prefix] = torch.arange(len(user), device=device)
    raise ValueError("a trie has at least one level")


def _flat_log_probs(model: SidDecoder, states: torch.Tensor, level: int, max_rows: int) -> torch.Tensor:
    """(M, D) states -> (M, V_k) float32 log-softmax of level k's logits, in head calls of <= max_rows rows."""
    return torch.cat([torch.log_softmax(model.level_logits(part, level).float(), dim=-1)
                      for part in states.split(max_rows)])
