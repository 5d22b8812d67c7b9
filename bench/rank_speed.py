"""Ranking cost of finished SID models: decoder states and pruned exact top-20 for the first 512 users.

    SIDREC_DATA=data .venv/bin/python bench/rank_speed.py runs/ml-1m-levers/base-s1 runs/ml-1m-levers/attend4-s1

Prints, per run: seconds for the states, seconds for the ranking, head rows per user and the state
width (the attending head's rows carry its memory). Wall time on a shared CPU: compare runs measured
together, not across machines.
"""

from __future__ import annotations

import sys
import time

import torch

from recsys.data.inputs import left_pad
from recsys.data.splits import make_split
from recsys.nets.exact_scoring import PruneStats, pruned_exact_topk
from recsys.runs.finished_run import FinishedRun

USERS, K = 512, 20


def main() -> None:
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        run = FinishedRun(path)
        net = run.recommender("sid-generative").net.eval()
        split = make_split(run.metrics.get("split", "leave-one-out"), run.ratings, run.catalogue)
        users = range(min(USERS, len(split.user_ids)))
        inputs = torch.as_tensor(left_pad([split.valid_inputs(u) for u in users], net.config.max_len))
        exclude = torch.zeros(len(users), net.config.num_items, dtype=torch.bool)
        stats = PruneStats()
        with torch.no_grad():
            start = time.perf_counter()
            state = net.decoder_state(inputs)
            built = time.perf_counter()
            pruned_exact_topk(net, state, net.trie(), exclude, K, stats=stats)
            ranked = time.perf_counter()
        print(f"{path}: states {built - start:.2f} s, ranking {ranked - built:.2f} s for {len(users)} users, "
              f"{stats.rows_per_user():.0f} head rows per user, state width {state.shape[1]}", flush=True)


if __name__ == "__main__":
    main()
