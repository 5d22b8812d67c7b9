"""Wall time per stage and peak memory of a finished `sidrec run` (read from its timings.json).

    .venv/bin/python bench/pipeline_timings.py runs/ml-1m [--name pipeline-ml-1m-cpu] [--note TEXT ...]

Copies the run's timings and headline metrics into bench/results/<name>.json, with this machine's facts.
Run it on the machine that made the run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default=None, help="result name (default: pipeline-<dataset>-<cpu|gpu>)")
    parser.add_argument("--note", action="append", default=[], help="a line on the conditions of the run (repeatable)")
    args = parser.parse_args()
    timings = json.loads((args.run / "timings.json").read_text())
    metrics = json.loads((args.run / "metrics.json").read_text())
    gpu = "peak_gpu_memory_gib" in timings and "CPU," not in timings["device"]
    name = args.name or f"pipeline-{timings['dataset']}-{'gpu' if gpu else 'cpu'}"
    figures = {"command": timings["command"], "device": timings["device"],
               "minutes": {stage: round(s / 60, 2) for stage, s in timings["stages"].items()},
               "total_minutes": round(timings["total_seconds"] / 60, 2), "peak_rss_gib": timings["peak_rss_gib"],
               "peak_gpu_memory_gib": timings.get("peak_gpu_memory_gib"),
               "ndcg@10": {m: round(v["ndcg@10"], 4) for m, v in metrics["models"].items()}}
    print(write_result(name, "cuda" if gpu else "cpu", figures, notes=args.note))


if __name__ == "__main__":
    main()
