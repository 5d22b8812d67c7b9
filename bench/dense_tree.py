"""SIDs made from a trained dense model's own item table: is the tree what keeps SID-generative behind?

    .venv/bin/python bench/dense_tree.py --run runs/m1/base/seed-1 --out runs/m1/dense-tree
    sidrec evaluate --dataset ml-1m --run runs/m1/dense-tree --seed 1 --models sid-generative --set ...

The lever table says most of the gap to the dense model sits at the first two SID codes, which group
movies by what the tokenizer reads (text, or SVD factors of the training matrix). This script builds the
tree from the vectors the winning model learned: the item table of RUN's trained `faiss-dense` (fit on
the split's training sequences and chosen on validation, so no test rating reaches it). Movies without
training ratings keep their untrained rows there, so they get what their text predicts instead
(`recsys.data.collaborative.fill_unrated`, as `--sid-unrated-factors text` does). The tokenizer is RUN's
own preset with RUN's seed (`train_and_assign`, as `sidrec sids` runs it); OUT gets RUN's movies and
embeddings and the new sids.parquet, sid_labels.parquet, sid_quality.json and quantizer/, so that
`sidrec evaluate --run OUT` trains the SID model on the new tree. Writes nothing else.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors.numpy import load_file

from recsys.data.collaborative import TokenizerInput, fill_unrated
from recsys.data.movielens import load_movielens
from recsys.data.splits import Catalogue, make_split
from recsys.evaluation.labels import label_prefixes
from recsys.runs.sid_stage import SidConfig, rating_counts, sids_frame, train_and_assign
from rqsid.io import read_json, write_json, write_parquet


def dense_item_vectors(run: Path, movies: pd.DataFrame, ratings: pd.DataFrame, split: str) -> np.ndarray:
    """(N, D) the trained dense model's item rows, L2-normalised, zero for movies never in training."""
    table = load_file(str(run / "models" / "faiss-dense" / "model.safetensors"))["item.weight"]
    table = table[: len(movies)].astype(np.float32)  # a padding row, if any, comes after the catalogue
    sequences = make_split(split, ratings, Catalogue(movies["movie_id"].to_numpy())).training_sequences()
    trained = np.zeros(len(movies), dtype=bool)
    trained[np.concatenate(sequences)] = True
    vectors = table / np.linalg.norm(table, axis=1, keepdims=True)
    vectors[~trained] = 0.0
    return vectors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished run (one seed) with faiss-dense")
    parser.add_argument("--out", type=Path, required=True, help="the new run directory (must not exist)")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"--out {args.out} exists; choose a new directory")
    for needed in ("sid_quality.json", "metrics.json", "models/faiss-dense/model.safetensors"):
        if not (args.run / needed).is_file():
            parser.error(f"--run {args.run}: {needed} missing (a finished one-seed run with faiss-dense is needed)")
    quality = read_json(args.run / "sid_quality.json")
    metrics = read_json(args.run / "metrics.json")
    preset = next(iter(quality["presets"]))
    movies = pd.read_parquet(args.run / "movies.parquet")
    dataset = load_movielens(quality["dataset"])
    split = metrics["split"]
    vectors = dense_item_vectors(args.run, movies, dataset.ratings, split)
    text = np.stack(pd.read_parquet(args.run / "embeddings.parquet")["embedding"].to_numpy()).astype(np.float32)
    tokenized = TokenizerInput(*fill_unrated(vectors, text))  # the map too, saved beside the quantiser
    cfg = SidConfig(preset=preset, seed=quality["seed"], progress=False)
    args.out.mkdir(parents=True)
    for name in ("movies.parquet", "embeddings.parquet"):
        shutil.copy(args.run / name, args.out / name)
    genres = [list(g) for g in movies["genres"]]
    _, sids, report = train_and_assign(tokenized, genres, preset, cfg, args.out)
    write_parquet(sids_frame(movies["movie_id"].to_numpy(), sids), args.out / "sids.parquet")
    write_parquet(label_prefixes(movies, sids, rating_counts(dataset, movies)), args.out / "sid_labels.parquet")
    write_json({**quality, "presets": {preset: report}, "tokenizer_input": f"faiss-dense item table of {args.run}"},
               args.out / "sid_quality.json")
    print(f"{args.out}: {len(np.unique(sids[:, :-1], axis=0))} distinct learned codes, "
          f"largest collision group {report['learned_collisions']['largest_collision_group']}")


if __name__ == "__main__":
    main()
