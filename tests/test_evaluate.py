"""Evaluation artifacts: files on disk reproduce metrics.json exactly; bad recommendations are caught."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import hand_metrics

from recsys.data.splits import Catalogue, SequenceSplit
from recsys.evaluation.evaluate import (
    TOP_K,
    check_recommendations,
    metrics_from_files,
    metrics_table,
    predictions_frame,
    targets_frame,
    write_evaluation,
)
from recsys.models.ranking import popularity_recommend

CATALOGUE = Catalogue(np.arange(101, 131))  # 30 movies: room for TOP_K = 20 unseen ones per user


def random_split(rng, n_users: int = 12) -> SequenceSplit:
    sequences = [rng.choice(CATALOGUE.size, size=rng.integers(3, 6), replace=False) for _ in range(n_users)]
    return SequenceSplit(
        name="leave-one-out", user_ids=np.arange(1, n_users + 1) * 7, train=[s[:-2] for s in sequences],
        valid_target=np.array([s[-2] for s in sequences]), test_target=np.array([s[-1] for s in sequences]),
        extra_train=[], skipped_users=0,
    )


def test_predictions_frame_layout():
    items, scores = np.array([[0, 2], [7, 1]]), np.array([[0.5, 0.25], [1, 0]])
    frame = predictions_frame(np.array([5, 3]), items, scores, CATALOGUE)
    assert list(frame.columns) == ["user_id", "rank", "movie_id", "score"]
    assert frame.dtypes.astype(str).tolist() == ["int32", "int16", "int32", "float32"]
    assert frame["user_id"].tolist() == [3, 3, 5, 5] and frame["rank"].tolist() == [1, 2, 1, 2]
    assert frame["movie_id"].tolist() == [108, 102, 101, 103]


def test_write_evaluation_round_trips_exactly(tmp_path, rng):
    split = random_split(rng)
    targets = targets_frame(split, CATALOGUE, "test")
    n_users = len(split.user_ids)
    items, scores = popularity_recommend(split, CATALOGUE.size, "test", k=TOP_K)
    random_items = np.argsort(rng.random((n_users, CATALOGUE.size)), axis=1)[:, :TOP_K]
    predictions = {
        "popularity": predictions_frame(split.user_ids, items, scores, CATALOGUE),
        "random": predictions_frame(split.user_ids, random_items, rng.random((n_users, TOP_K)), CATALOGUE),
    }
    metrics = write_evaluation(tmp_path, dataset="toy", split="leave-one-out", predictions=predictions,
                               targets=targets, extra={"top_k": TOP_K})
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics
    assert on_disk["num_users"] == len(split.user_ids) and on_disk["top_k"] == TOP_K
    reloaded_targets = pd.read_parquet(tmp_path / "test_targets.parquet")
    for model, frame in predictions.items():
        reloaded = pd.read_parquet(tmp_path / "predictions" / f"{model}.parquet")
        pd.testing.assert_frame_equal(reloaded, frame)  # float32 scores survive the round trip
        assert hand_metrics(reloaded, reloaded_targets) == pytest.approx(on_disk["models"][model])
    assert list(on_disk["models"]["random"]) == [f"{m}@{k}" for k in (5, 10, 20) for m in ("recall", "ndcg")]
    assert metrics_table(on_disk).shape == (2, 6)


def test_metrics_from_files_rejects_incomplete_predictions(rng):
    split = random_split(rng)
    targets = targets_frame(split, CATALOGUE, "test")
    items, scores = popularity_recommend(split, CATALOGUE.size, "test", k=TOP_K)
    frame = predictions_frame(split.user_ids, items, scores, CATALOGUE)
    with pytest.raises(ValueError, match="no predictions"):
        metrics_from_files(frame[frame["user_id"] != split.user_ids[0]], targets)
    with pytest.raises(ValueError, match="different numbers"):
        metrics_from_files(frame.drop(index=0), targets)
    with pytest.raises(ValueError, match="metrics need 20"):
        metrics_from_files(frame[frame["rank"] <= 10], targets)


def test_metrics_from_files_hand_case():
    predictions = pd.DataFrame({"user_id": [1, 1, 2, 2], "rank": [1, 2, 1, 2], "movie_id": [5, 6, 7, 8],
                                "score": np.zeros(4, dtype=np.float32)})
    targets = pd.DataFrame({"user_id": [2, 1], "movie_id": [8, 9]})
    out = metrics_from_files(predictions, targets, ks=(1, 2))
    assert out == {"recall@1": 0.0, "ndcg@1": 0.0, "recall@2": 0.5, "ndcg@2": 0.5 / np.log2(3)}


def test_check_recommendations(rng):
    split = random_split(rng)
    items, scores = popularity_recommend(split, CATALOGUE.size, "valid", k=TOP_K)
    frame = predictions_frame(split.user_ids, items, scores, CATALOGUE)
    assert check_recommendations(frame, split, CATALOGUE, "valid") == 1.0
    # the validation target is part of the test inputs, so recommending it at test time is caught
    seen = frame.copy()
    assert seen.loc[0, "user_id"] == split.user_ids[0]
    seen.loc[0, "movie_id"] = CATALOGUE.movie_ids[split.valid_target[0]]
    with pytest.raises(ValueError, match="already in"):
        check_recommendations(seen, split, CATALOGUE, "test")
    history = frame.copy()
    history.loc[0, "movie_id"] = CATALOGUE.movie_ids[split.train[0][0]]
    with pytest.raises(ValueError, match="1 of"):
        check_recommendations(history, split, CATALOGUE, "valid")
    unknown = frame.copy()
    unknown.loc[0, "movie_id"] = 999
    with pytest.raises(ValueError, match="unknown movies"):
        check_recommendations(unknown, split, CATALOGUE, "valid")
