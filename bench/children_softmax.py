"""A trained SID model's softmax over its codebook vs over the codes that exist below each prefix.

    SIDREC_DATA=data .venv/bin/python bench/children_softmax.py runs/ml-1m-levers/base-s1 [--split test]

The head's level-k softmax runs over all V_k codes, so part of its mass sits on codes that no movie has
below the prefix; exact scoring sums log-probabilities over real paths only, so that mass is lost. This
scores the same weights both ways (`recsys.nets.exact_scoring.item_log_probs(children_only=...)`): NLL of the
target, its share per level, and NDCG@10 / R@10 with the history excluded. Validation by default (the
decision); `--split test` once per trained model, for a row of the ablation table. Scoring only: nothing
is retrained. Writes bench/results/children-softmax-<run>-<split>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from common import write_result

from recsys.data.inputs import left_pad
from recsys.data.splits import make_split
from recsys.evaluation.metrics import ndcg_at_k, recall_at_k
from recsys.nets.exact_scoring import item_log_probs
from recsys.runs.finished_run import FinishedRun

USERS_PER_BATCH = 128
K = 10


def score_users(net: torch.nn.Module, histories: list[np.ndarray], targets: np.ndarray,
                children_only: bool) -> dict[str, np.ndarray]:
    """Per user: the target's log p and its top-K list (history excluded) under one softmax."""
    trie, logp, ranked = net.trie(), [], []
    for start in range(0, len(histories), USERS_PER_BATCH):
        part = histories[start:start + USERS_PER_BATCH]
        inputs = torch.as_tensor(left_pad(part, net.config.max_len))
        scores = item_log_probs(net, net.decoder_state(inputs), trie, children_only=children_only)  # (B, N)
        logp.append(scores[torch.arange(len(part)), torch.as_tensor(targets[start:start + len(part)])])
        for row, history in enumerate(part):
            scores[row, torch.as_tensor(history)] = float("-inf")
        ranked.append(torch.topk(scores, K, dim=1).indices)
    return {"log_p": torch.cat(logp).numpy(), "ranked": torch.cat(ranked).numpy()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", default="sid-generative")
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    args = parser.parse_args()
    run = FinishedRun(args.run)
    net = run.recommender(args.model).net.eval()
    split = make_split(run.metrics.get("split", "leave-one-out"), run.ratings, run.catalogue)
    users = range(len(split.user_ids))
    inputs = [split.valid_inputs(u) if args.split == "valid" else split.test_inputs(u) for u in users]
    targets = split.valid_target if args.split == "valid" else split.test_target
    figures = {}
    with torch.no_grad():
        for name, children_only in (("codebook softmax", False), ("children softmax", True)):
            out = score_users(net, inputs, targets, children_only)
            figures[name] = {"nll": float(-out["log_p"].mean()),
                             f"ndcg@{K}": float(ndcg_at_k(out["ranked"], targets, K).mean()),
                             f"recall@{K}": float(recall_at_k(out["ranked"], targets, K).mean())}
            print(args.run, args.split, name, figures[name], flush=True)
    figures.update(run=str(args.run), model=args.model, split=args.split, users=len(users))
    write_result(f"children-softmax-{args.run.name}-{args.split}", "cpu", figures,
                 notes=["same trained weights scored twice; nothing retrained"])


if __name__ == "__main__":
    main()
