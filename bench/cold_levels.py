"""Where a cold-start run's SID model loses the cold movies: per-level NLL of the test target, cold vs warm.

    .venv/bin/python bench/cold_levels.py runs/ml-100k-cold/seed-1 [--model sid-generative]

Teacher-forced on each user's test input (the true prefix given at every level), split by whether the
test target is a cold movie. Also the share of cold targets whose first k codes all occur among the
warm movies' SIDs (a prefix that training ever used as a target). Writes <run>/cold_levels.json and
prints it.
"""

from __future__ import annotations

import json

import numpy as np
import torch
from common import cold_start_model

from recsys.data.inputs import left_pad
from rqsid.io import write_json


def main() -> None:
    args, net, split = cold_start_model(__doc__.splitlines()[0])
    cold = split.cold_target()
    inputs = torch.as_tensor(left_pad([split.test_inputs(u) for u in range(len(split.user_ids))], net.config.max_len))
    targets = torch.as_tensor(split.test_target)
    with torch.no_grad():
        figures = {name: values.numpy() for name, values in net.diagnostics(inputs, targets).items()}
    sids = net.item_sids.numpy()
    warm_items = np.setdiff1d(np.arange(len(sids)), split.cold_items)
    out = {"run": str(args.run), "model": args.model, "users": {"cold": int(cold.sum()), "warm": int((~cold).sum())},
           "mean": {side: {name: float(v[mask].mean()) for name, v in figures.items()}
                    for side, mask in (("cold", cold), ("warm", ~cold))}}
    seen = {}
    for depth in range(1, sids.shape[1] + 1):
        prefixes = {tuple(p) for p in sids[warm_items, :depth]}
        seen[f"first {depth} codes"] = float(np.mean([tuple(p) in prefixes for p in sids[split.cold_items, :depth]]))
    out["cold movies whose prefix a warm movie has"] = seen
    write_json(out, args.run / "cold_levels.json")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
