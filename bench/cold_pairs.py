"""One model of two cold-start runs, paired per user on each slice: all users, those whose test target is a
cold movie, and the rest.

    .venv/bin/python bench/cold_pairs.py runs/cpu/collab-cold-textfill/seed-1 runs/gb/ml-1m-cold \\
        [--model sid-generative] [--catalogue runs/gb/ml-1m-cold/seed-1]

Each RUN is a finished run or a seeds' summary (its `per_user.parquet`: per-user NDCG@10, averaged over the
seeds for a summary) of the same dataset's cold-start split, so the users and their cold slice are the
same. `--catalogue` names a run folder holding the SID stage's tables, for a summary folder that has none
(default: the second run). Prints one line a slice: users, both means, the paired difference with its 95 %
bootstrap interval and Wilcoxon p (`recsys.evaluation.significance.paired_comparison`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split
from recsys.evaluation.significance import paired_comparison
from recsys.runs.run_dir import RunDir


def cold_target(catalogue_run: Path, dataset: str) -> pd.Series:
    """user_id -> True where the user's test target is a cold movie."""
    split = make_split("cold-start", load_movielens(dataset).ratings, RunDir(catalogue_run).catalogue)
    return pd.Series(split.cold_target(), index=split.user_ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--model", default="sid-generative")
    parser.add_argument("--catalogue", type=Path, default=None)
    args = parser.parse_args()
    metrics = json.loads((args.reference / "metrics.json").read_text())
    if metrics["split"] != "cold-start":
        raise SystemExit(f"{args.reference} is a {metrics['split']} run, not a cold-start one")
    a = pd.read_parquet(args.run / "per_user.parquet").set_index("user_id")[args.model]
    b = pd.read_parquet(args.reference / "per_user.parquet").set_index("user_id")[args.model]
    if not a.index.equals(b.index):
        raise SystemExit(f"{args.run} and {args.reference} evaluated different users")
    catalogue = args.catalogue or args.reference
    if not (catalogue / "movies.parquet").exists():
        raise SystemExit(f"{catalogue} holds no movies.parquet (a seeds' summary?): name one of its seed "
                         f"folders with --catalogue, e.g. --catalogue {catalogue}/seed-1")
    cold = cold_target(catalogue, metrics["dataset"]).loc[a.index].to_numpy()
    for name, mask in (("all users", np.ones(len(a), bool)), ("cold target", cold), ("warm target", ~cold)):
        r = paired_comparison(a.to_numpy()[mask], b.to_numpy()[mask])
        print(f"{name} ({mask.sum()}): {a[mask].mean():.4f} against {b[mask].mean():.4f}, "
              f"{r.mean_difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], Wilcoxon p = "
              + ("n/a (no differences)" if r.wilcoxon_p is None else f"{r.wilcoxon_p:.2g}"))


if __name__ == "__main__":
    main()
