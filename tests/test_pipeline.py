"""The whole pipeline on a tiny ML-100K-format release: fetch-free, with a tiny real text encoder."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.cli import main
from recsys.evaluate import metrics_from_files

FAST = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "max_len=10", "--set", "max_epochs=3",
        "--set", "patience=2", "--set", "batch_size=32"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_movielens, tiny_sentence_encoder):
    home = tmp_path_factory.mktemp("home")
    runs = {}
    for name in ("a", "b"):  # the same seed twice
        run = home / "runs" / name
        common = ["--dataset", str(tiny_movielens), "--run", str(run), "--encoder", str(tiny_sentence_encoder)]
        assert main(["sids", *common, "--set", "max_epochs=20", "--set", "codebook_size=8"]) == 0
        assert main(["evaluate", *common, *FAST]) == 0
        runs[name] = run
    return runs


def test_run_writes_every_artifact(tiny_run):
    run = tiny_run["a"]
    for name in ("movies.parquet", "embeddings.parquet", "sids.parquet", "sid_quality.json", "metrics.json",
                 "test_targets.parquet", "quantizer/config.json", "models/sid-generative/config.json",
                 "models/faiss-dense/config.json"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["models"]) == {"popularity", "faiss-content", "faiss-dense", "sid-generative"}
    assert metrics["num_users"] == 60 and metrics["split"] == "leave-one-out"


def test_sids_are_unique_four_tokens(tiny_run):
    sids = pd.read_parquet(tiny_run["a"] / "sids.parquet")
    assert len(sids) == 48 and sids["sid"].is_unique
    assert [c for c in sids.columns if c.startswith("sid_")] == ["sid_0", "sid_1", "sid_2", "sid_3"]


def test_metrics_recompute_exactly_from_the_files(tiny_run):
    run = tiny_run["a"]
    metrics = json.loads((run / "metrics.json").read_text())
    targets = pd.read_parquet(run / "test_targets.parquet")
    for model, expected in metrics["models"].items():
        assert metrics_from_files(pd.read_parquet(run / "predictions" / f"{model}.parquet"), targets) == expected


def test_recommendations_are_real_unseen_movies(tiny_run, tiny_movielens):
    run = tiny_run["a"]
    movies = set(pd.read_parquet(run / "movies.parquet")["movie_id"])
    ratings = pd.read_csv(tiny_movielens / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "ts"])
    targets = pd.read_parquet(run / "test_targets.parquet")
    history = ratings.merge(targets, on=["user_id", "movie_id"], how="left", indicator=True)
    history = history[history["_merge"] == "left_only"].groupby("user_id")["movie_id"].apply(set)
    for model in ("sid-generative", "faiss-dense", "faiss-content", "popularity"):
        predictions = pd.read_parquet(run / "predictions" / f"{model}.parquet")
        assert predictions.groupby("user_id").size().eq(20).all()
        assert set(predictions["movie_id"]) <= movies
        seen = predictions.apply(lambda r: r["movie_id"] in history[r["user_id"]], axis=1)
        assert not seen.any(), model


def test_same_seed_same_sids_and_metrics(tiny_run):
    a, b = tiny_run["a"], tiny_run["b"]
    pd.testing.assert_frame_equal(pd.read_parquet(a / "sids.parquet"), pd.read_parquet(b / "sids.parquet"))
    metrics = [json.loads((run / "metrics.json").read_text())["models"] for run in (a, b)]
    assert metrics[0] == metrics[1]
    for model in metrics[0]:
        np.testing.assert_array_equal(pd.read_parquet(a / "predictions" / f"{model}.parquet")["movie_id"],
                                      pd.read_parquet(b / "predictions" / f"{model}.parquet")["movie_id"])


def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys):
    assert main(["evaluate", "--dataset", str(tmp_path / "missing"), "--run", str(tmp_path / "run")]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["sids", "--dataset", str(tmp_path), "--set", "nonsense"]) == 2
