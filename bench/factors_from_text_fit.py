"""How well a movie's text predicts its collaborative factors: what `--sid-unrated-factors text` relies on.

    .venv/bin/python bench/factors_from_text_fit.py --run runs/gb/ml-1m/seed-1 [--dims 64] [--seed 1]

From a finished run's movies and text embeddings, the 64 SVD factors of each split's training interactions
(`recsys.data.collaborative.item_factors`); a seeded tenth of the rated movies is zeroed, filled by
`factors_from_text` (fit on the other rated movies), and compared with its true factors by cosine. The
baseline is the rated movies' mean factor direction. Writes `bench/results/factors-from-text-<dataset>.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from recsys.data.collaborative import factors_from_text, item_factors
from recsys.data.movielens import load_movielens
from recsys.data.splits import make_split
from recsys.runs.run_dir import RunDir


def held_out_cosines(factors: np.ndarray, text: np.ndarray, seed: int) -> dict:
    rated = np.flatnonzero(np.linalg.norm(factors, axis=1) > 0)
    held = np.random.default_rng(seed).choice(rated, len(rated) // 10, replace=False)
    hidden = factors.copy()
    hidden[held] = 0.0
    cosine = np.sum(factors_from_text(hidden, text)[held] * factors[held], axis=1)  # rows are unit vectors
    mean = factors[rated].mean(0)
    baseline = factors[held] @ (mean / np.linalg.norm(mean))  # (held,) cosine with the mean direction
    return {"unrated_movies": len(factors) - len(rated), "held_out": len(held),
            "cosine_mean": round(float(cosine.mean()), 3), "cosine_median": round(float(np.median(cosine)), 3),
            "mean_direction_cosine": round(float(baseline.mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    run = RunDir(args.run)
    catalogue, text = run.catalogue, run.embeddings
    dataset = json.loads((args.run / "metrics.json").read_text())["dataset"]
    ratings = load_movielens(dataset).ratings
    out = {"command": f"bench/factors_from_text_fit.py --run {args.run} --dims {args.dims} --seed {args.seed}",
           "dataset": dataset, "dims": args.dims}
    for split in ("leave-one-out", "cold-start"):
        sequences = make_split(split, ratings, catalogue).training_sequences()
        out[split] = held_out_cosines(item_factors(sequences, catalogue.size, args.dims, args.seed), text, args.seed)
        print(split, out[split])
    path = Path(__file__).parent / "results" / f"factors-from-text-{dataset}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
