"""The README's headline table from a multi-seed run's metrics.json: mean ± sd per model, then the paired tests.

    .venv/bin/python bench/seeds_table.py results/ml-100k-seeds/metrics.json [--names presets]

Rows are sorted by mean NDCG@10; the lines under the table are SID-generative against each model on
per-user NDCG@10, as `sidrec run --seeds` computed them (`recsys.runs.multiseed`). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from recsys.evaluation.significance import PairedComparison

COLUMNS = [("recall@5", "R@5"), ("recall@10", "R@10"), ("recall@20", "R@20"), ("ndcg@5", "N@5"),
           ("ndcg@10", "N@10"), ("ndcg@20", "N@20")]
NAMES = {"faiss-dense": "FAISS dense (SASRec-style)", "faiss-content": "FAISS content", "itemknn": "item-kNN",
         "markov": "Markov", "sid-generative": "SID-generative", "popularity": "popularity",
         "sid-hybrid": "SID + dense hybrid"}


def table(metrics: dict) -> str:
    order = sorted(metrics["models"], key=lambda m: -metrics["models"][m]["ndcg@10"])
    lines = ["| model | " + " | ".join(label for _, label in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for model in order:
        mean, sd = metrics["models"][model], metrics["sd"][model]
        cells = [f"{mean[key]:.4f} ± {abs(sd[key]):.4f}" for key, _ in COLUMNS]
        lines.append(f"| {NAMES.get(model, model)} | " + " | ".join(cells) + " |")
    paired = [f"- {PairedComparison(**row).sentence()}" for row in metrics.get("paired", [])]
    return "\n".join([*lines, "", *paired])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("metrics", type=Path)
    args = parser.parse_args()
    metrics = json.loads(args.metrics.read_text())
    print(f"{metrics['dataset']}, {metrics['split']}, {metrics['num_users']} users, seeds {metrics['seeds']}\n")
    print(table(metrics))


if __name__ == "__main__":
    main()
