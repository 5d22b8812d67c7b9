"""What importing each public entry point costs, in a fresh interpreter each time, and which heavy libraries
it pulls in: inference (a quantizer, a net, the model registry) must load neither Lightning nor faiss.

    .venv/bin/python bench/import_time.py [--repeats 5]    -> bench/results/import-time.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from common import write_result

ENTRY_POINTS = {
    "torch (the floor every entry point pays)": "import torch",
    "rqsid (RQVAE, ResidualQuantizer, assign_semantic_ids)": "import rqsid",
    "recsys.nets.generative (SidGenerativeModel)": "import recsys.nets.generative",
    "recsys.nets.dense (DenseSequentialModel)": "import recsys.nets.dense",
    "recsys.models (the registry)": "import recsys.models",
    "recsys.train.fit (Lightning training)": "import recsys.train.fit",
    "recsys.app.cli (sidrec)": "import recsys.app.cli",
}
PROBE = ("import sys, time\nstart = time.perf_counter()\n{statement}\nseconds = time.perf_counter() - start\n"
         "import json\nprint(json.dumps({{'seconds': seconds, 'heavy': sorted({{'lightning', 'faiss', "
         "'sentence_transformers', 'datasets'}} & set(sys.modules))}}))")


def measure(statement: str, repeats: int) -> dict:
    runs = [json.loads(subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)], check=True,
                                      capture_output=True, text=True).stdout) for _ in range(repeats)]
    return {"median_seconds": round(statistics.median(r["seconds"] for r in runs), 3), "loads": runs[0]["heavy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    figures = {name: measure(statement, args.repeats) for name, statement in ENTRY_POINTS.items()}
    for name, figure in figures.items():
        print(f"{figure['median_seconds']:6.2f} s  {name}  loads {figure['loads'] or 'none of them'}")
    write_result("import-time", "cpu", figures, notes=["median over fresh interpreters; the OS file cache is warm"])


if __name__ == "__main__":
    main()
