"""Evaluation artifacts: ranked predictions and targets as tables, and metrics computed only from them.

A run directory holds

    predictions/<model>.parquet   user_id int32 | rank int16 (1..K) | movie_id int32 | score float32
    test_targets.parquet          user_id int32 | movie_id int32
    per_user.parquet              user_id int32 | one float64 column per model: that user's NDCG@10
    metrics.json                  {"dataset", "split", "num_users", "models": {model: {"recall@5": ...}},
                                   "paired": [SID-generative vs each other model on per-user NDCG@10], ...}

and metrics.json is computed by `metrics_from_files` from exactly the tables written beside it, so anyone
can recompute it from the parquet files and get bit-identical numbers. The paired tests
(`recsys.evaluation.significance`) come from per_user.parquet.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.splits import Catalogue, HeldOut, SequenceSplit, stage_inputs, stage_targets
from recsys.evaluation.metrics import ndcg_at_k, ranking_metrics
from recsys.evaluation.significance import paired_comparison
from rqsid.io import write_json, write_parquet

TOP_K = 20
KS = (5, 10, 20)
PREDICTION_COLUMNS = ["user_id", "rank", "movie_id", "score"]
TARGET_COLUMNS = ["user_id", "movie_id"]
HEADER_KEYS = ("dataset", "split", "num_users", "models", "paired", "slices")
PAIRED_METRIC, PAIRED_K = "ndcg@10", 10
REFERENCE_MODEL = "sid-generative"  # the model every other one is compared with, pair by pair


def predictions_frame(
    user_ids: np.ndarray, items: np.ndarray, scores: np.ndarray, catalogue: Catalogue
) -> pd.DataFrame:
    """Long table of ranked recommendations: one row per (user, rank), item indices mapped to movie ids."""
    items, scores, user_ids = np.asarray(items), np.asarray(scores), np.asarray(user_ids)
    if items.ndim != 2 or items.shape != scores.shape or items.shape[0] != len(user_ids):
        raise ValueError(
            f"need items and scores of shape (users, K) for {len(user_ids)} users; "
            f"got {items.shape} and {scores.shape}"
        )
    n_users, k = items.shape
    frame = pd.DataFrame({
        "user_id": np.repeat(user_ids, k).astype(np.int32),
        "rank": np.tile(np.arange(1, k + 1), n_users).astype(np.int16),
        "movie_id": catalogue.movie_ids[items.ravel()].astype(np.int32),
        "score": scores.ravel().astype(np.float32),
    })
    return frame.sort_values(["user_id", "rank"], kind="stable", ignore_index=True)


def targets_frame(split: SequenceSplit, catalogue: Catalogue, stage: HeldOut = "test") -> pd.DataFrame:
    """(user_id int32, movie_id int32): each evaluated user's held-out movie for the stage."""
    return pd.DataFrame({
        "user_id": split.user_ids.astype(np.int32),
        "movie_id": catalogue.movie_ids[stage_targets(split, stage)].astype(np.int32),
    })


def ranked_matrix(predictions: pd.DataFrame, users: np.ndarray) -> np.ndarray:
    """(U, K) movie ids in rank order for `users` (sorted); checks each has exactly ranks 1..K."""
    missing = np.setdiff1d(users, predictions["user_id"].to_numpy())
    if len(missing):
        raise ValueError(f"{len(missing)} target users have no predictions, e.g. {missing[:5].tolist()}")
    rows = predictions[predictions["user_id"].isin(users)].sort_values(["user_id", "rank"], kind="stable")
    counts = rows.groupby("user_id", sort=True).size()
    k = int(counts.iloc[0])
    if (counts != k).any():
        raise ValueError(f"users have different numbers of ranked rows: {sorted(counts.unique().tolist())}")
    ranked = rows["movie_id"].to_numpy().reshape(len(users), k)
    ranks = rows["rank"].to_numpy().reshape(len(users), k)
    if (ranks != np.arange(1, k + 1)).any():
        raise ValueError(f"every user's ranks must be exactly 1..{k}")
    return ranked


def metrics_from_files(
    predictions: pd.DataFrame, targets: pd.DataFrame, ks: Sequence[int] = KS
) -> dict[str, float]:
    """ranking_metrics over the target users, computed from the two tables alone (joined on user_id).

    Every target user must have the same number K >= max(ks) of ranked rows with ranks 1..K; a target user
    missing from predictions is an error. Prediction rows of users without a target are ignored.
    """
    for name, frame, columns in (("predictions", predictions, PREDICTION_COLUMNS),
                                 ("targets", targets, TARGET_COLUMNS)):
        absent = set(columns) - set(frame.columns)
        if absent:
            raise ValueError(f"{name} table lacks columns {sorted(absent)}")
    if targets["user_id"].duplicated().any():
        raise ValueError("targets must hold one row per user")
    if len(targets) == 0:
        raise ValueError("targets table is empty")
    ordered = targets.sort_values("user_id", kind="stable")
    ranked = ranked_matrix(predictions, ordered["user_id"].to_numpy())
    if ranked.shape[1] < max(ks):
        raise ValueError(f"predictions rank {ranked.shape[1]} items per user but metrics need {max(ks)}")
    return ranking_metrics(ranked, ordered["movie_id"].to_numpy(), ks)


def per_user_ndcg(predictions: pd.DataFrame, targets: pd.DataFrame, k: int = PAIRED_K) -> pd.Series:
    """NDCG@k of each target user (index user_id, sorted), from the two tables alone."""
    ordered = targets.sort_values("user_id", kind="stable")
    users = ordered["user_id"].to_numpy()
    values = ndcg_at_k(ranked_matrix(predictions, users), ordered["movie_id"].to_numpy(), k)
    return pd.Series(values, index=pd.Index(users, name="user_id"))


def paired_tests(per_user: pd.DataFrame, reference: str = REFERENCE_MODEL) -> list[dict[str, Any]]:
    """The reference model against every other column of a per-user table (users x models)."""
    if reference not in per_user.columns:
        return []
    return [paired_comparison(per_user[reference].to_numpy(), per_user[other].to_numpy(), model=reference,
                              baseline=other, metric=PAIRED_METRIC).to_json()
            for other in per_user.columns if other != reference]


def write_evaluation(
    run_dir: Path, *, dataset: str, split: str, predictions: dict[str, pd.DataFrame],
    targets: pd.DataFrame, extra: dict[str, Any], slices: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write predictions/<model>.parquet, test_targets.parquet, per_user.parquet and metrics.json (last);
    return the metrics. `slices` names subsets of the target users (user ids, e.g. those whose target is
    a cold movie): metrics.json then also holds every model's metrics on each slice.

    Metrics are computed (before anything is written, so a bad table writes nothing) from the frames cast
    to the stored dtypes; parquet stores int32/int16/float32 exactly, so a recomputation from the files
    gives the same bits.
    """
    run_dir = Path(run_dir)
    clash = set(extra) & set(HEADER_KEYS)
    if clash:
        raise ValueError(f"extra must not override {sorted(clash)}")
    bad = [m for m in predictions if not m or "/" in m or "\\" in m or m.startswith(".")]
    if bad or not predictions:
        raise ValueError(f"need at least one model with a plain file name; got {list(predictions)}")
    targets = targets[TARGET_COLUMNS].astype({"user_id": np.int32, "movie_id": np.int32})
    frames = {
        model: frame[PREDICTION_COLUMNS].astype(
            {"user_id": np.int32, "rank": np.int16, "movie_id": np.int32, "score": np.float32}
        ).reset_index(drop=True)
        for model, frame in predictions.items()
    }
    models = {model: metrics_from_files(frame, targets) for model, frame in frames.items()}
    per_user = pd.DataFrame({model: per_user_ndcg(frame, targets) for model, frame in frames.items()})
    metrics = {"dataset": dataset, "split": split, "num_users": len(targets), "models": models,
               "paired": paired_tests(per_user), **extra}
    if slices:
        metrics["slices"] = {name: slice_metrics(frames, targets, users) for name, users in slices.items()}
    for model, frame in frames.items():
        write_parquet(frame, run_dir / "predictions" / f"{model}.parquet")
    write_parquet(targets.reset_index(drop=True), run_dir / "test_targets.parquet")
    write_parquet(per_user.reset_index().astype({"user_id": np.int32}), run_dir / "per_user.parquet")
    write_json(metrics, run_dir / "metrics.json")
    return metrics


def slice_metrics(frames: dict[str, pd.DataFrame], targets: pd.DataFrame, users: np.ndarray) -> dict[str, Any]:
    """Every model's metrics over the target users in `users` (and how many they are)."""
    chosen = targets[targets["user_id"].isin(users)]
    if chosen.empty:
        return {"num_users": 0, "models": {}}
    return {"num_users": len(chosen), "models": {m: metrics_from_files(f, chosen) for m, f in frames.items()}}


def metrics_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """Models x metrics table from a metrics.json dict, rounded to 4 decimals for printing."""
    table = pd.DataFrame.from_dict(metrics["models"], orient="index").round(4)
    table.index.name = "model"
    return table


def check_recommendations(
    predictions: pd.DataFrame, split: SequenceSplit, catalogue: Catalogue, stage: HeldOut
) -> float:
    """Fraction of recommended rows that name a catalogue movie outside the user's stage inputs.

    Raises ValueError unless that fraction is 1.0 (also for users the split does not evaluate).
    """
    inputs = stage_inputs(split, stage)
    history = pd.DataFrame({
        "user_id": np.repeat(split.user_ids, [len(h) for h in inputs]).astype(np.int64),
        "movie_id": catalogue.movie_ids[np.concatenate([np.empty(0, np.int64), *inputs])].astype(np.int64),
    }).drop_duplicates()  # a re-rated movie must not duplicate prediction rows in the merge
    rows = predictions[["user_id", "movie_id"]].astype(np.int64)
    if len(rows) == 0:
        raise ValueError("no recommendations to check")
    merged = rows.merge(history, on=["user_id", "movie_id"], how="left", indicator=True)
    seen = (merged["_merge"] == "both").to_numpy()
    known_movie = np.isin(rows["movie_id"].to_numpy(), catalogue.movie_ids)
    known_user = np.isin(rows["user_id"].to_numpy(), split.user_ids)
    valid = known_movie & known_user & ~seen
    if not valid.all():
        bad = rows[~valid].head(5).to_dict("records")
        raise ValueError(
            f"{int((~valid).sum())} of {len(valid)} recommendations are unknown movies/users or already in "
            f"the user's {stage} inputs, e.g. {bad}"
        )
    return float(valid.mean())
