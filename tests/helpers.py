"""Helpers shared by the tests that re-run a finished tiny run (imported as `helpers`)."""

import json
import shlex

import pandas as pd


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
