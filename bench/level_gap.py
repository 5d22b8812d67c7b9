"""Where the SID model trails the dense one, level by level, on the same validation targets and SIDs.

    .venv/bin/python bench/level_gap.py runs/ml-1m-seeds/seed-1

Any distribution over movies factorises exactly over the SID tree, so the dense model's softmax
p(i | h) gives per-level conditionals too:

    p_dense(c_k | c_<k, h) = sum of p(i | h) over movies with prefix c_<=k / the same over prefix c_<k

and the levels' NLLs add up to the dense model's item NLL. Beside the SID model's own per-level NLL
(teacher-forced, `SidGenerativeModel.diagnostics`), this shows which SID levels hold the gap between the
two models: the tree itself cannot (it loses nothing), so a gap at a level is the SID head's
parametrisation or its training. Both models come from the run (the same SIDs and split). Writes
<run>/level_gap.json and prints it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from recsys.data.inputs import left_pad
from recsys.data.splits import make_split
from recsys.runs.finished_run import FinishedRun
from rqsid.io import write_json

USERS_PER_BATCH = 256


def prefix_ids(sids: torch.Tensor) -> list[torch.Tensor]:
    """Per depth k = 1 .. T: (N,) an id of each movie's length-k prefix (0 .. P_k - 1)."""
    return [torch.unique(sids[:, :k], dim=0, return_inverse=True)[1] for k in range(1, sids.shape[1] + 1)]


@torch.no_grad()
def dense_level_nll(probs: torch.Tensor, targets: torch.Tensor, prefixes: list[torch.Tensor]) -> torch.Tensor:
    """(B, N) dense probabilities, (B,) targets -> (B, T) -log p_dense(c_k | c_<k) of each target's codes."""
    mass = [probs.new_ones(len(probs))]  # the empty prefix holds everything
    for ids in prefixes:
        per_prefix = probs.new_zeros(len(probs), int(ids.max()) + 1).index_add_(1, ids, probs)  # (B, P_k)
        mass.append(per_prefix.gather(1, ids[targets][:, None]).squeeze(1))
    return torch.stack([mass[k].log() - mass[k + 1].log() for k in range(len(prefixes))], dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    run = FinishedRun(args.run)
    sid, dense = (run.recommender(name).net.eval() for name in ("sid-generative", "faiss-dense"))
    split = make_split(run.metrics.get("split", "leave-one-out"), run.ratings, run.catalogue)
    prefixes = prefix_ids(sid.item_sids)
    depth, users = sid.item_sids.shape[1], len(split.user_ids)
    sums = {"sid": torch.zeros(depth), "dense": torch.zeros(depth)}
    with torch.no_grad():
        for start in range(0, users, USERS_PER_BATCH):
            rows = range(start, min(start + USERS_PER_BATCH, users))
            histories = [split.valid_inputs(u) for u in rows]
            targets = torch.as_tensor(split.valid_target[rows.start:rows.stop])
            figures = sid.diagnostics(torch.as_tensor(left_pad(histories, sid.config.max_len)), targets)
            sums["sid"] += torch.stack([figures[f"nll/level{k + 1}"] for k in range(depth)], dim=1).sum(0)
            state = dense.user_vectors(torch.as_tensor(left_pad(histories, dense.config.max_len)))  # (B, D)
            logits = state @ dense.item.weight.T  # (B, N)
            sums["dense"] += dense_level_nll(logits.softmax(dim=1).double(), targets, prefixes).float().sum(0)
    levels = {name: (total / users).tolist() for name, total in sums.items()}
    out = {"run": str(args.run), "command": f"bench/level_gap.py {args.run}", "users": users,
           "validation NLL per SID level, nats": levels,
           "total": {name: sum(values) for name, values in levels.items()},
           "gap per level (sid - dense)": [s - d for s, d in zip(levels["sid"], levels["dense"], strict=True)]}
    write_json(out, args.run / "level_gap.json")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
