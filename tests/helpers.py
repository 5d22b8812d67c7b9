"""Helpers shared by the tests that re-run a finished tiny run (imported as `helpers`)."""

import json
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
