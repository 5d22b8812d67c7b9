"""Validation NLL of a finished run's learned model: -log p(validation target | its history), nats, mean.

    .venv/bin/python bench/val_nll.py runs/ml-1m-seeds/seed-1 faiss-dense

The same figure as the training log's val/nll (each network's `diagnostics`), for a model whose log
predates it; the dense model's and the SID model's are the same quantity (a softmax over every movie vs
the SID factorisation), so their difference is the gap in nats.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from recsys.data.inputs import left_pad
from recsys.data.splits import make_split
from recsys.runs.finished_run import FinishedRun

USERS_PER_BATCH = 256


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("model")
    args = parser.parse_args()
    run = FinishedRun(args.run)
    net = run.recommender(args.model).net.eval()
    split = make_split(run.metrics.get("split", "leave-one-out"), run.ratings, run.catalogue)
    users, nll = len(split.user_ids), []
    with torch.no_grad():
        for start in range(0, users, USERS_PER_BATCH):
            rows = range(start, min(start + USERS_PER_BATCH, users))
            inputs = torch.as_tensor(left_pad([split.valid_inputs(u) for u in rows], net.config.max_len))
            nll.append(net.diagnostics(inputs, torch.as_tensor(split.valid_target[rows.start:rows.stop]))["nll"])
    print(f"{args.run} {args.model}: validation NLL {float(torch.cat(nll).mean()):.3f} nats over {users} users")


if __name__ == "__main__":
    main()
