"""Settings of the count-based baselines chosen on validation only (never the test targets).

    .venv/bin/python bench/tune_simple_baselines.py --dataset ml-1m --run runs/ml-1m

Each setting is fitted on the training sequences and scored on the validation stage (inputs: the
training part; target: the second-to-last item) with the same metric code as the test table. Result:
bench/results/tune-simple-<dataset>.json, best first per model. The presets' defaults come from it.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from common import quiet, write_result

from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split, stage_inputs, stage_targets
from recsys.evaluation.metrics import ranking_metrics
from recsys.models import REGISTRY, FitContext
from recsys.models.config import recommender_config
from recsys.runs.run_dir import read_run_inputs

GRID = {
    "itemknn": {"itemknn_neighbours": [20, 50, 100, 200, 400, 800, 1600],
                "itemknn_decay": [1.0, 0.9, 0.8, 0.7, 0.5, 0.3]},
    "markov": {"markov_last": [1, 2, 3, 5, 10, 20, 50], "markov_decay": [0.2, 0.3, 0.5, 0.6, 0.7, 0.9]},
    "faiss-content": {"content_decay": [0.1, 0.2, 0.5, 0.8, 1.0]},
}


def validation_scores(name: str, settings: dict, split, catalogue, embeddings, sids) -> dict:
    cfg = recommender_config(settings, progress=False)
    start = time.perf_counter()
    model = REGISTRY[name].build(FitContext(catalogue, embeddings, sids, cfg)).fit(split)
    ranking = model.recommend(stage_inputs(split, "valid"), 20, users=split.user_ids)
    metrics = ranking_metrics(ranking.items, stage_targets(split, "valid"))
    return {"settings": settings, **{k: round(v, 4) for k, v in metrics.items()},
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--run", required=True, type=Path, help="a run directory with the SID stage done")
    parser.add_argument("--models", nargs="+", default=list(GRID))
    args = parser.parse_args()
    quiet()
    catalogue, embeddings, sids = read_run_inputs(args.run)
    split = make_split("leave-one-out", load_movielens(args.dataset).ratings, catalogue)
    figures = {}
    for name in args.models:
        keys = list(GRID[name])
        rows = [validation_scores(name, dict(zip(keys, values, strict=True)), split, catalogue, embeddings, sids)
                for values in itertools.product(*GRID[name].values())]
        rows.sort(key=lambda r: -r["ndcg@10"])
        figures[name] = {"best": rows[0]["settings"], "validation": rows}
        print(name, rows[0], flush=True)
    write_result(f"tune-simple-{Path(args.dataset).name}", "cpu", figures,
                 notes=["validation stage only (leave-one-out second-to-last item); test targets never read",
                        "rows sorted by validation NDCG@10"])


if __name__ == "__main__":
    main()
