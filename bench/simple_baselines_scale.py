"""Do item-kNN and the Markov chain hold at ML-32M's size? Fit and recommend times and peak memory.

    .venv/bin/python bench/synthetic_movielens.py --out data/synthetic/ml-32m-shaped
    .venv/bin/python bench/simple_baselines_scale.py --dataset data/synthetic/ml-32m-shaped

Stages, each in its own process so that each peak RSS is the stage's own:
- prepare: load the CSV release, leave-one-out split, and write the training sequences (flat, with their
  lengths) and the split's targets to --work as .npy files (kept: later runs skip this stage).
- itemknn-fit, markov-fit: read those arrays, fit the model, save it (safetensors) to --work.
- itemknn-recommend, markov-recommend: load the saved model and rank top-k for --users random evaluated
  users' test inputs (training part + validation item), the history excluded.
The models run at RecommenderConfig's defaults (the JSON records the settings each stage used). Peak RSS
includes the interpreter, numpy/scipy and torch (imported by bench/common.py): `start_rss_mib`
is that floor. Result: bench/results/scale-ml-32m-simple-baselines.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from common import peak_rss_mib, rate, write_result

MODELS = ("itemknn", "markov")
STAGES = ("prepare", *(f"{m}-{step}" for m in MODELS for step in ("fit", "recommend")))
ARRAYS = ("items", "lengths", "user_ids", "valid_target", "test_target", "movie_ids")


def stage_prepare(dataset: Path, work: Path) -> dict:
    from recsys.data.movielens import load_movielens
    from recsys.data.splits import Catalogue, make_split

    start = time.perf_counter()
    data = load_movielens(dataset)
    catalogue = Catalogue(data.movies["movie_id"].to_numpy())
    split = make_split("leave-one-out", data.ratings, catalogue)
    sequences = split.training_sequences()
    arrays = {"items": np.concatenate(sequences).astype(np.int32),
              "lengths": np.array([len(s) for s in sequences], dtype=np.int64),
              "user_ids": split.user_ids, "valid_target": split.valid_target, "test_target": split.test_target,
              "movie_ids": catalogue.movie_ids}
    work.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        np.save(work / f"{name}.npy", array)
    figures = {"seconds": round(time.perf_counter() - start, 1), "ratings": len(data.ratings),
               "movies": catalogue.size, "users": len(split.user_ids),
               "training_ratings": int(arrays["lengths"].sum()), "peak_rss_mib": peak_rss_mib()}
    (work / "prepare.json").write_text(json.dumps(figures))  # reported again when a later run reuses the arrays
    return figures


def read_split(work: Path):
    """The leave-one-out split and catalogue that `prepare` wrote (training sequences are views)."""
    from recsys.data.splits import Catalogue, SequenceSplit

    a = {name: np.load(work / f"{name}.npy") for name in ARRAYS}
    train = np.split(a["items"].astype(np.int64), np.cumsum(a["lengths"])[:-1])
    split = SequenceSplit(name="leave-one-out", user_ids=a["user_ids"], train=train,
                          valid_target=a["valid_target"], test_target=a["test_target"], extra_train=[],
                          skipped_users=0)
    return split, Catalogue(a["movie_ids"])


def model_context(catalogue):
    from recsys.models.base import FitContext
    from recsys.models.config import RecommenderConfig

    return FitContext(catalogue=catalogue, embeddings=np.zeros((catalogue.size, 1), np.float32),
                      sids=np.zeros((catalogue.size, 1), np.int64), config=RecommenderConfig(progress=False),
                      progress=False)


def stage_fit(model_name: str, work: Path) -> dict:
    from recsys.models import REGISTRY

    figures = {"start_rss_mib": peak_rss_mib()}
    split, catalogue = read_split(work)
    figures["inputs_peak_rss_mib"] = peak_rss_mib()
    start = time.perf_counter()
    model = REGISTRY[model_name].build(model_context(catalogue)).fit(split)
    figures["seconds"] = round(time.perf_counter() - start, 1)
    figures["peak_rss_mib"] = peak_rss_mib()
    model.save(work / "models" / model_name)
    matrix = model.similarity if model_name == "itemknn" else model.transitions
    figures.update(settings=model.saved_settings(), matrix_nnz=int(matrix.nnz),
                   matrix_mib=round((matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes) / 2**20, 1),
                   rows_with_entries=int((np.diff(matrix.indptr) > 0).sum()))
    return figures


def stage_recommend(model_name: str, work: Path, users: int, k: int) -> dict:
    from recsys.models import REGISTRY

    figures = {"start_rss_mib": peak_rss_mib()}
    split, catalogue = read_split(work)
    rows = np.sort(np.random.default_rng(0).choice(len(split.user_ids), min(users, len(split.user_ids)),
                                                   replace=False))
    histories = [split.test_inputs(int(u)) for u in rows]
    model = REGISTRY[model_name].load(work / "models" / model_name, model_context(catalogue))
    figures["inputs_peak_rss_mib"] = peak_rss_mib()
    start = time.perf_counter()
    ranking = model.recommend(histories, k)
    seconds = time.perf_counter() - start
    hits = (ranking.items == split.test_target[rows, None]).any(axis=1)
    figures.update(users=len(rows), k=k, seconds=round(seconds, 1), users_per_second=rate(len(rows), seconds),
                   mean_history=round(float(np.mean([len(h) for h in histories])), 1),
                   max_history=max(len(h) for h in histories), peak_rss_mib=peak_rss_mib(),
                   # a sanity figure only: the synthetic release has no sequential signal
                   test_hit_rate_at_k=round(float(hits.mean()), 4))
    return figures


def run_stage(stage: str, args: argparse.Namespace) -> dict:
    if stage == "prepare":
        return stage_prepare(args.dataset, args.work)
    model_name, step = stage.split("-")
    if step == "fit":
        return stage_fit(model_name, args.work)
    return stage_recommend(model_name, args.work, args.users, args.k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="a synthetic (or real) ml-32m folder")
    parser.add_argument("--work", type=Path, default=Path("data/cache/scale-ml-32m-simple-baselines"))
    parser.add_argument("--users", type=int, default=10_000, help="users ranked in the recommend stages")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--stage", choices=STAGES, help="run one stage in this process (used internally)")
    args = parser.parse_args()
    if args.stage:  # a child: one stage, its figures as the last line of stdout
        print(json.dumps(run_stage(args.stage, args)))
        return
    figures: dict[str, dict] = {}
    for stage in STAGES:
        cache = [args.work / f"{name}.npy" for name in ARRAYS] + [args.work / "prepare.json"]
        if stage == "prepare" and all(path.exists() for path in cache):
            figures[stage] = {**json.loads((args.work / "prepare.json").read_text()), "cached": str(args.work)}
            continue
        done = subprocess.run([sys.executable, sys.argv[0], *sys.argv[1:], "--stage", stage], check=True,
                              capture_output=True, text=True)
        figures[stage] = json.loads(done.stdout.strip().splitlines()[-1])
        print(stage, figures[stage], flush=True)
    for model_name in MODELS:  # the headline: worst peak of the model's two stages, in GiB
        figures[f"{model_name}_peak_rss_gib"] = round(
            max(figures[f"{model_name}-{s}"]["peak_rss_mib"] for s in ("fit", "recommend")) / 1024, 2)
    write_result("scale-ml-32m-simple-baselines", "cpu", figures,
                 notes=[f"dataset: {args.dataset}", "one process per stage; peak RSS includes the imports"])


if __name__ == "__main__":
    main()
