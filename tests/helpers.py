"""Helpers shared by the tests that re-run a finished tiny run (imported as `helpers`)."""

import json
import math
import shlex

import pandas as pd

# Tiny model sizes: a whole run (SIDs, every recommender) takes seconds.
FAST = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "max_len=10", "--set", "max_epochs=3",
        "--set", "patience=2", "--set", "batch_size=32"]


def run_args(tiny_run, run_dir):
    """The tiny run "b"'s own command, pointed at another directory."""
    argv = shlex.split(json.loads((tiny_run["b"] / "timings.json").read_text())["command"])[1:]
    argv[argv.index("--run") + 1] = str(run_dir)
    return argv


def readable_artifacts(run):
    """Every parquet / JSON file under a final (not hidden, not temporary) name parses."""
    for path in run.rglob("*"):
        if any(part.startswith(".") for part in path.relative_to(run).parts) or not path.is_file():
            continue
        if path.suffix == ".parquet":
            pd.read_parquet(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())


def hand_metrics(predictions: pd.DataFrame, targets: pd.DataFrame, ks=(5, 10, 20)) -> dict[str, float]:
    """recall@K and NDCG@K from a predictions file and a targets file, one user at a time, without recsys's
    metric code: r = the held-out movie's rank in the user's list, a hit when r <= K, gain 1 / log2(r + 1)."""
    lists: dict[int, dict[int, int]] = {}
    for user, rank, movie in zip(predictions["user_id"], predictions["rank"], predictions["movie_id"], strict=True):
        lists.setdefault(int(user), {})[int(rank)] = int(movie)
    totals = {f"{name}@{k}": 0.0 for k in ks for name in ("recall", "ndcg")}
    for user, target in zip(targets["user_id"], targets["movie_id"], strict=True):
        ranked = [lists[int(user)][r] for r in sorted(lists[int(user)])]
        r = ranked.index(int(target)) + 1 if int(target) in ranked else None
        for k in ks:
            if r is not None and r <= k:
                totals[f"recall@{k}"] += 1.0
                totals[f"ndcg@{k}"] += 1.0 / math.log2(r + 1)
    return {key: total / len(targets) for key, total in totals.items()}
