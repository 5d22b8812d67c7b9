"""Codebook collapse, measured: the tiger preset with and without k-means init and dead-code re-seeding.

    .venv/bin/python bench/rqvae_ablation.py --run runs/demo

Reads the run's embeddings and movies, trains the four combinations with the same seed, and writes
bench/results/rqvae-ablation-<dataset>.json with per-level utilisation, collisions and coherence.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import write_result

from rqsid.assign import assign_semantic_ids
from rqsid.lightning import train_rqvae
from rqsid.presets import get_preset
from rqsid.quality import sid_quality_report


def run_variant(embeddings: np.ndarray, genres: list[list[str]], kmeans: bool, reseed: bool, seed: int) -> dict:
    preset = get_preset("tiger", len(embeddings), embeddings.shape[1], kmeans_init=kmeans,
                        reseed_every=5 if reseed else 0, seed=seed)
    with tempfile.TemporaryDirectory() as tmp:
        module = train_rqvae(embeddings, preset.model, preset.training, output_dir=Path(tmp), progress=False)
    sids = assign_semantic_ids(module.model, embeddings, method=preset.sid_method)
    report = sid_quality_report(module.model, embeddings, sids, genres, seed=seed)
    return {
        "kmeans_init": kmeans, "reseed_dead_codes": reseed,
        "utilisation": [level["utilisation"] for level in report["levels"]],
        "perplexity": [round(level["perplexity"], 2) for level in report["levels"]],
        "learned_collision_rate": report["learned_collisions"]["collision_rate"],
        "largest_collision_group": report["learned_collisions"]["largest_collision_group"],
        "coherence_level_1": report["coherence"]["level_1"]["ratio"],
        "reconstruction_cosine": report["reconstruction"]["reconstruction_cosine"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/demo")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    run = Path(args.run)
    embeddings = np.stack(pd.read_parquet(run / "embeddings.parquet")["embedding"].to_numpy())
    movies = pd.read_parquet(run / "movies.parquet")
    genres = [list(g) for g in movies["genres"]]
    variants = [run_variant(embeddings, genres, kmeans, reseed, args.seed)
                for kmeans in (False, True) for reseed in (False, True)]
    dataset = pd.read_json(run / "sid_quality.json", typ="series")["dataset"]
    figures = {"dataset": dataset, "seed": args.seed, "num_items": len(embeddings),
               "variants": {f"kmeans_init={v['kmeans_init']}, reseed={v['reseed_dead_codes']}": v for v in variants}}
    write_result(f"rqvae-ablation-{dataset}", "cpu", figures)
    print(pd.DataFrame(variants).to_string())


if __name__ == "__main__":
    main()
