"""Does backing off to the shared prefix let a cold-start run's SID model recommend the cold movies?

    .venv/bin/python bench/cold_backoff.py runs/ml-100k-cold/seed-1

A movie that was never a training target has SID codes the model learned to push down (below the
deepest prefix it shares with a movie that was: bench/cold_levels.py). Back-off scores such a movie by
that prefix instead, shared evenly among the catalogue movies under it:

    score(i) = log p(c_1 .. c_d | history) - log n(c_1 .. c_d),   d = deepest prefix a training target has

and every other movie by its exact log p(SID | history) as the run did. The model is the run's trained
one, unchanged; nothing is tuned (d and n follow from the split). Reports NDCG@10 / R@20 on the cold
and warm test slices for both scorings (the plain one must equal the run's metrics.json), writes
<run>/cold_backoff.json.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from common import cold_start_model

from recsys.data.inputs import exclusion_mask, left_pad
from recsys.evaluation.metrics import ndcg_at_k, recall_at_k
from recsys.nets.exact_scoring import item_log_probs
from rqsid.io import write_json

USERS_PER_BATCH = 128


def backoff_prefixes(sids: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per movie: d, the depth of its deepest prefix that some seen movie has (T for a seen movie), and
    n, the number of catalogue movies under that prefix."""
    depth, count = np.full(len(sids), sids.shape[1]), np.ones(len(sids))
    known = [{tuple(p) for p in sids[seen, :d]} for d in range(sids.shape[1] + 1)]
    for item in np.flatnonzero(~seen):
        d = max(d for d in range(sids.shape[1] + 1) if tuple(sids[item, :d]) in known[d])
        depth[item] = d
        count[item] = np.all(sids[:, :d] == sids[item, :d], axis=1).sum()
    return depth, count


@torch.no_grad()
def prefix_log_probs(net: torch.nn.Module, state: torch.Tensor, items: np.ndarray, depth: np.ndarray) -> torch.Tensor:
    """(U, D) states -> (U, len(items)) log p(first depth[i] codes of item i | history), true prefix given."""
    sids = net.item_sids[torch.as_tensor(items)]  # (C, T)
    users, count = len(state), len(items)
    rows = state.repeat_interleave(count, dim=0)  # (U * C, D)
    codes = sids.repeat(users, 1)  # (U * C, T)
    limit = torch.as_tensor(depth).repeat(users)  # (U * C,)
    total = rows.new_zeros(len(rows))
    for level in range(sids.shape[1]):
        log_probs = torch.log_softmax(net.level_logits(rows, level).float(), dim=-1)
        total += torch.where(limit > level, log_probs.gather(1, codes[:, level:level + 1]).squeeze(1), 0.0)
        if level < sids.shape[1] - 1:
            rows = net.advance(rows, level, codes[:, level])
    return total.view(users, count)


def main() -> None:
    args, net, split = cold_start_model(__doc__.splitlines()[0])
    sids = net.item_sids.numpy()
    num_items = len(sids)
    seen = np.zeros(num_items, dtype=bool)
    for sequence in split.training_sequences():
        seen[sequence[1:]] = True
    depth, count = backoff_prefixes(sids, seen)
    unseen = np.flatnonzero(~seen)
    histories = [split.test_inputs(u) for u in range(len(split.user_ids))]
    ranked = {"plain": [], "back-off": []}
    for start in range(0, len(histories), USERS_PER_BATCH):
        part = histories[start:start + USERS_PER_BATCH]
        state = net.decoder_state(torch.as_tensor(left_pad(part, net.config.max_len)))
        exclude = exclusion_mask(part, num_items)
        plain = item_log_probs(net, state, net.trie())  # (U, N)
        backed = plain.clone()
        backed[:, unseen] = prefix_log_probs(net, state, unseen, depth[unseen]) - torch.as_tensor(
            np.log(count[unseen]), dtype=torch.float32)
        for name, scores in (("plain", plain), ("back-off", backed)):
            order = torch.sort(scores.masked_fill(exclude, float("-inf")), dim=1, descending=True, stable=True)
            ranked[name].append(order.indices[:, :20].numpy())
    cold = split.cold_target()
    out = {"run": str(args.run), "model": args.model, "command": f"bench/cold_backoff.py {args.run}",
           "never a training target": int((~seen).sum()), "cold movies": len(split.cold_items),
           "users": {"cold target": int(cold.sum()), "warm target": int((~cold).sum())}}
    for name, parts in ranked.items():
        items = np.concatenate(parts)
        out[name] = {side: {"ndcg@10": float(ndcg_at_k(items[mask], split.test_target[mask], 10).mean()),
                            "recall@20": float(recall_at_k(items[mask], split.test_target[mask], 20).mean())}
                     for side, mask in (("cold target", cold), ("warm target", ~cold), ("all", np.ones_like(cold)))}
        top = items[:, :20]
        out[name]["cold movies in the top 20, per user"] = float(np.isin(top, split.cold_items).sum(1).mean())
    write_json(out, args.run / "cold_backoff.json")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
