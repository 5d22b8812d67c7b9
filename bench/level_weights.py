"""Does re-weighting the SID levels at ranking time help? Chosen on validation, reported once on test.

    .venv/bin/python bench/level_weights.py runs/m100/base/seed-1 --out results/X/level_weights.json

The SID model ranks by log p(item | h) = sum_k log p(c_k | c_<k, h). Most of its gap to the dense model
sits at the first two levels (bench/level_gap.py), where a movie inherits its text cluster's probability.
This ranks instead by

    score_w(item) = sum_k w_k log p(c_k | c_<k, h),    w_0 = 1 (a common scale leaves the ranking as is)

so w_k < 1 trusts level k less. Each level's term comes from one exact pass over the whole catalogue
(`recsys.nets.exact_scoring.item_log_probs` with the other levels' log-probabilities set to 0); every w of
the grid is then a weighted sum. The weights with the best validation NDCG@10 are applied to the test
histories once; the test figure of w = 1 (the model as it ranks) is the reference of the paired test.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from recsys.data.inputs import exclusion_mask, left_pad
from recsys.data.splits import make_split, stage_inputs, stage_targets
from recsys.evaluation.metrics import ndcg_at_k
from recsys.evaluation.significance import paired_comparison
from recsys.nets import exact_scoring
from recsys.runs.finished_run import FinishedRun
from rqsid.io import write_json

USERS_PER_BATCH = 256
GRID = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
K = 10


@torch.no_grad()
def level_scores(net: torch.nn.Module, histories: list[np.ndarray], level: int) -> torch.Tensor:
    """(U, N) log p(c_level | c_<level, h) of every movie's code at `level`, 0 at the other levels."""
    original = exact_scoring._head_log_probs

    def one_level(model, states, k, mask=None):
        logp = original(model, states, k, mask)
        return logp if k == level else torch.zeros_like(logp)

    out = []
    with mock.patch.object(exact_scoring, "_head_log_probs", one_level):
        for start in range(0, len(histories), USERS_PER_BATCH):
            inputs = torch.as_tensor(left_pad(histories[start:start + USERS_PER_BATCH], net.config.max_len))
            state = net.decoder_state(inputs)  # (B, D')
            out.append(exact_scoring.item_log_probs(net, state, net.trie(),
                                                    children_only=net.config.children_softmax))
    return torch.cat(out)


def target_ndcg(scores: torch.Tensor, exclude: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    """(U,) NDCG@K of each user's target, ranked as the exact scorer ranks (excluded items last, ties to
    the lower index)."""
    return ndcg_at_k(exact_scoring._ranked(scores, exclude, K).items.numpy(), targets.numpy(), K)


def stage_figures(net: torch.nn.Module, split, catalogue_size: int, stage: str) -> tuple:
    histories = stage_inputs(split, stage)
    levels = torch.stack([level_scores(net, histories, k) for k in range(net.item_sids.shape[1])])  # (T, U, N)
    exclude = torch.as_tensor(exclusion_mask(histories, catalogue_size))
    return levels, exclude, torch.as_tensor(stage_targets(split, stage))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    run = FinishedRun(args.run)
    net = run.recommender("sid-generative").net.eval()
    split = make_split(run.metrics.get("split", "leave-one-out"), run.ratings, run.catalogue)
    valid = stage_figures(net, split, run.catalogue.size, "valid")
    depth = valid[0].shape[0]
    rows = []
    for rest in itertools.product(GRID, repeat=depth - 1):
        weights = torch.tensor((1.0, *rest))
        ndcg = target_ndcg(torch.einsum("t,tun->un", weights, valid[0]), valid[1], valid[2]).mean()
        rows.append({"weights": weights.tolist(), "valid_ndcg@10": float(ndcg)})
    rows.sort(key=lambda r: -r["valid_ndcg@10"])
    plain = next(r for r in rows if r["weights"] == [1.0] * depth)
    test = stage_figures(net, split, run.catalogue.size, "test")
    per_user = {name: target_ndcg(torch.einsum("t,tun->un", torch.tensor(w), test[0]), test[1], test[2])
                for name, w in (("plain", plain["weights"]), ("chosen", rows[0]["weights"]))}
    out = {"run": str(args.run), "command": f"bench/level_weights.py {args.run} --out {args.out}",
           "grid": list(GRID), "plain (w = 1)": {**plain, "test_ndcg@10": float(per_user["plain"].mean())},
           "chosen on validation": {**rows[0], "test_ndcg@10": float(per_user["chosen"].mean())},
           "chosen vs plain, test per-user NDCG@10": paired_comparison(
               per_user["chosen"], per_user["plain"], model="chosen", baseline="plain").to_json(),
           "best 10 on validation": rows[:10]}
    write_json(out, args.out)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
