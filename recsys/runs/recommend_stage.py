"""The recommendation stage of a run: one split, every registered model, one metric code.

Reads what the Semantic-ID stage wrote (movies.parquet, embeddings.parquet, sids.parquet), fits each model
of `recsys.models.REGISTRY` through the one `Recommender` contract (training sequences only), saves it to
models/<name>, and writes predictions/<model>.parquet, test_targets.parquet and metrics.json
(see `recsys.evaluation.evaluate`).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import pandas as pd

from recsys.data.movielens import MovieLens
from recsys.data.splits import SequenceSplit, make_split, stage_inputs
from recsys.evaluation.evaluate import TOP_K, check_recommendations, predictions_frame, targets_frame, write_evaluation
from recsys.models import FitContext, get_model_class
from recsys.models.base import SETTINGS_FILE, model_settings_dict
from recsys.models.config import RecommenderConfig, config_dict
from recsys.runs.run_dir import SID_TABLES, read_run_inputs
from recsys.runs.stages import Stage, fingerprint, table_digest
from rqsid.io import atomic_path, process_rank, write_parquet

log = logging.getLogger(__name__)
STAGING = ".staging"  # models being (re)trained, until the whole recommend stage has succeeded


def model_stage(name: str, cfg: RecommenderConfig, where: Path, ratings_digest: str,
                run_dir: Path | None = None) -> Stage:
    """One model's stage, recorded under `where` (the run, or its staging folder): the settings the model
    depends on, the run's SID-stage artifacts and the ratings."""
    # only what the model depends on: a new learning rate must not redo popularity
    settings = {"model": name, **model_settings_dict(cfg, get_model_class(name))}
    settings.get("training", {}).pop("trainer", None)  # Lightning's device flags change no result
    inputs = [fingerprint(Path(run_dir or where) / f) for f in SID_TABLES]
    outputs = (f"predictions/{name}.parquet", f"models/{name}/{SETTINGS_FILE}")
    return Stage(where, f"model-{name}", settings, [*inputs, ratings_digest], outputs)


def fit_and_rank(name: str, context: FitContext, split: SequenceSplit, out_dir: Path) -> pd.DataFrame:
    """Fit one model on the split's training sequences, save it to out_dir/models/<name>, rank every test
    user."""
    model = get_model_class(name).build(context).fit(split)
    with atomic_path(out_dir / "models" / name) as tmp:
        model.save(tmp)
    histories = stage_inputs(split, "test")
    ranking = model.recommend(histories, TOP_K, users=split.user_ids)
    return predictions_frame(split.user_ids, ranking.items, ranking.scores, context.catalogue)


def read_staged_predictions(staging: Path, run_dir: Path, name: str) -> pd.DataFrame:
    """A staged model's predictions. Under DDP, rank 0 may move them into the run (`promote`, one rename
    per file) while another rank reads: a file gone from the staging folder is then in the run."""
    try:
        return pd.read_parquet(staging / "predictions" / f"{name}.parquet")
    except FileNotFoundError:
        return pd.read_parquet(run_dir / "predictions" / f"{name}.parquet")


def promote(staging: Path, run_dir: Path, names: list[str]) -> None:
    """Move the staged models' folders, logs, predictions and stage records into the run (after every
    model of the stage succeeded), then drop the staging folder."""
    for name in names:
        for part in (f"models/{name}", f"train/{name}", f"predictions/{name}.parquet", f"stages/model-{name}.json"):
            source, target = staging / part, run_dir / part
            if not source.exists():
                continue
            if target.is_dir():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            source.replace(target)
    shutil.rmtree(staging, ignore_errors=True)


def run_recommenders(dataset: MovieLens, run_dir: Path, cfg: RecommenderConfig, *, force: bool = False,
                     resume: bool = False) -> dict:
    """Train and evaluate every model in cfg.models on one split; returns metrics.json's content.

    A model whose stage finished before with the same inputs and settings is not trained again (its
    predictions are read back) unless `force`; `resume` continues an interrupted training. Models that
    are (re)trained go to a staging folder first, and replace the run's files only once every model has
    succeeded, just before metrics.json: an interrupted re-run with new settings leaves the previous
    models, predictions and metrics.json as they were (`--resume` continues from the staged ones).
    """
    run_dir = Path(run_dir)
    if any(run_dir.glob("seed-*/metrics.json")):
        raise ValueError(f"{run_dir} holds an evaluation over several seeds; a single-seed one needs a directory "
                         f"of its own")
    catalogue, embeddings, sids = read_run_inputs(run_dir)
    split = make_split(cfg.split, dataset.ratings, catalogue)
    log.info("%s split: %d users evaluated, %d skipped", split.name, len(split.user_ids), split.skipped_users)
    ratings_digest = table_digest(dataset.ratings)
    staging = run_dir / STAGING
    predictions, seconds, valid, staged, reused = {}, {}, {}, [], set()
    for name in cfg.models:
        start = time.perf_counter()
        final, pending = (model_stage(name, cfg, where, ratings_digest, run_dir) for where in (run_dir, staging))
        pending.promoted_to = run_dir
        # `seconds`: a model's training and ranking time, kept from the run that made it when it is reused
        if final.is_done() and not force:
            log.info("%s: finished before with the same inputs and settings, skipped (--force redoes it)", name)
            predictions[name] = pd.read_parquet(run_dir / "predictions" / f"{name}.parquet")
            seconds[name] = final.finished_seconds()
            reused.add(name)
        elif pending.is_done() and not force:  # trained by an interrupted run, or (DDP) by rank 0 just now
            predictions[name] = read_staged_predictions(staging, run_dir, name)
            seconds[name] = pending.finished_seconds()
            reused.add(name)
            staged.append(name)
        else:
            context = FitContext(catalogue, embeddings, sids, cfg, output_dir=staging / "train" / name,
                                 resume=resume and pending.can_resume(), progress=cfg.progress)
            pending.start()
            predictions[name] = fit_and_rank(name, context, split, staging)
            write_parquet(predictions[name], staging / "predictions" / f"{name}.parquet")
            seconds[name] = round(time.perf_counter() - start, 1)
            pending.finish(seconds[name])
            staged.append(name)
        # Share of recommendations that are real catalogue movies outside the user's history (must be 1).
        valid[name] = check_recommendations(predictions[name], split, catalogue, "test")
        log.info("%s: done in %.1f s", name, time.perf_counter() - start)
    if staged and process_rank() == 0:  # under DDP, rank 0 alone moves the files (as it alone writes them)
        (run_dir / "metrics.json").unlink(missing_ok=True)  # from here until it is rewritten, it would mislead
        promote(staging, run_dir, staged)
    extra = {"location": dataset.location, "seed": cfg.training.seed, "seconds": seconds,
             "reused": sorted(reused), "valid_recommendations": valid, "config": config_dict(cfg)}
    cold = split.cold_target()
    slices = {"cold target": split.user_ids[cold], "warm target": split.user_ids[~cold]} if split.cold_items.size \
        else None
    return write_evaluation(run_dir, dataset=dataset.name, split=split.name, predictions=predictions,
                            targets=targets_frame(split, catalogue, "test"), extra=extra, slices=slices)
