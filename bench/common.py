"""Shared helpers of the benchmark scripts: timing, peak memory, machine facts and the result JSON.

Every script writes bench/results/<name>.json with the command that produced it, the date (UTC), the
machine and the figures; `bench/report.py` turns those files into Markdown tables.
"""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from recsys.runs.pipeline import peak_rss_gib
from rqsid.io import write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENV_KEYS = ("HF_HUB_OFFLINE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def sync(device: str) -> None:
    """Wait for queued GPU work, so that a timer stops when the work is done, not when it was queued."""
    if device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize()


class Timer:
    """`with Timer(device) as t: ...` then `t.seconds` (wall time, GPU synchronised on both ends)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device, self.seconds = device, float("nan")

    def __enter__(self) -> Timer:
        sync(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        sync(self.device)
        self.seconds = time.perf_counter() - self.start


def median_seconds(fn: Callable[[], Any], repeats: int, device: str = "cpu") -> float:
    """Median wall time of `repeats` calls of fn (call it once before to exclude warm-up)."""
    times = []
    for _ in range(repeats):
        with Timer(device) as t:
            fn()
        times.append(t.seconds)
    return statistics.median(times)


def quiet() -> None:
    """Silence Lightning's info lines and the warnings the project's tests also ignore."""
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for pattern in (".*does not have many workers.*", ".*LeafSpec.*", ".*GPU available but not used.*"):
        warnings.filterwarnings("ignore", pattern)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB."""
    return round(peak_rss_gib() * 1024, 1)


def trainer_flags(device: str) -> dict[str, Any]:
    """Lightning Trainer flags for a torch device string: cpu, cuda, cuda:1, mps."""
    kind, _, index = device.partition(":")
    accelerator = "gpu" if kind == "cuda" else kind
    return {"accelerator": accelerator, "devices": [int(index)] if index else 1}


def machine(device: str) -> dict[str, Any]:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "device": device}
    info["env"] = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def write_result(name: str, device: str, figures: dict[str, Any], notes: list[str] | None = None) -> Path:
    """Write bench/results/<name>.json atomically and return its path."""
    result = {
        "name": name,
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(device),
        "notes": notes or [],
        "figures": figures,
    }
    return write_json(result, RESULTS_DIR / f"{name}.json")


def rate(count: int, seconds: float) -> float:
    """Items per second, rounded for the report."""
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def cold_start_model(description: str) -> tuple[Any, Any, Any]:
    """The command line of the cold-start analyses (RUN [--model M]): the parsed arguments, the run's trained SID
    network (eval mode) and its cold-start split."""
    import argparse

    from recsys.data.splits import make_split
    from recsys.runs.finished_run import FinishedRun

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", default="sid-generative")
    args = parser.parse_args()
    run = FinishedRun(args.run)
    return args, run.recommender(args.model).net.eval(), make_split("cold-start", run.ratings, run.catalogue)
