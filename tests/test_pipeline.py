"""The whole pipeline on a tiny ML-100K-format release: fetch-free, with a tiny real text encoder."""

import json
import logging

import numpy as np
import pandas as pd
import pytest
from helpers import FAST, hand_metrics

from recsys.app.cli import main
from recsys.models import DEFAULT_MODELS as MODELS


def test_run_writes_every_artifact(tiny_run):
    run = tiny_run["a"]
    for name in ("movies.parquet", "embeddings.parquet", "sids.parquet", "sid_quality.json", "metrics.json",
                 "test_targets.parquet", "per_user.parquet", "quantizer/config.json",
                 "models/sid-generative/config.json", "models/faiss-dense/config.json",
                 *(f"models/{model}/recommender.json" for model in MODELS)):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert list(metrics["models"]) == list(MODELS)
    assert metrics["num_users"] == 60 and metrics["split"] == "leave-one-out"


def test_sids_are_unique_four_tokens(tiny_run):
    sids = pd.read_parquet(tiny_run["a"] / "sids.parquet")
    assert len(sids) == 48 and sids["sid"].is_unique
    assert [c for c in sids.columns if c.startswith("sid_")] == ["sid_0", "sid_1", "sid_2", "sid_3"]


def test_metrics_match_an_independent_count_over_the_files(tiny_run):
    run = tiny_run["a"]
    metrics = json.loads((run / "metrics.json").read_text())
    targets = pd.read_parquet(run / "test_targets.parquet")
    for model, expected in metrics["models"].items():
        predictions = pd.read_parquet(run / "predictions" / f"{model}.parquet")
        assert hand_metrics(predictions, targets) == pytest.approx(expected)


def test_recommendations_are_real_unseen_movies(tiny_run, tiny_movielens):
    run = tiny_run["a"]
    movies = set(pd.read_parquet(run / "movies.parquet")["movie_id"])
    ratings = pd.read_csv(tiny_movielens / "u.data", sep="\t", names=["user_id", "movie_id", "rating", "ts"])
    targets = pd.read_parquet(run / "test_targets.parquet")
    history = ratings.merge(targets, on=["user_id", "movie_id"], how="left", indicator=True)
    history = history[history["_merge"] == "left_only"].groupby("user_id")["movie_id"].apply(set)
    for model in MODELS:
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


def test_run_writes_timings_and_report(tiny_run):
    run = tiny_run["b"]
    timings = json.loads((run / "timings.json").read_text())
    assert {"fetch and load", "text and embeddings", "RQ-VAE and SIDs", "sid-generative (train + test)",
            "faiss-dense (train + test)"} <= set(timings["stages"])
    assert timings["total_seconds"] >= sum(timings["stages"].values()) - 1 and timings["peak_rss_gib"] > 0
    assert timings["command"].startswith("sidrec run --preset ml-100k")
    report = (run / "report.md").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    ndcg = metrics["models"]["sid-generative"]["ndcg@10"]
    assert f"{round(ndcg, 4)}" in report and "## Wall time" in report and "SASRec" not in report


def test_enrichment_file_reaches_the_movie_texts(tmp_path, tiny_movielens, tiny_sentence_encoder):
    extras = tmp_path / "plots.jsonl"
    extras.write_text('{"movie_id": 3, "plot_summary": "A toy story.", "director": "Someone"}\n')
    run = tmp_path / "run"
    assert main(["sids", "--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder), "--run",
                 str(run), "--enrichment", str(extras), "--set", "max_epochs=2", "--set", "codebook_size=8"]) == 0
    texts = pd.read_parquet(run / "movies.parquet").set_index("movie_id")["text"]
    assert texts[3].endswith("Directed by Someone. Plot: A toy story.") and "Plot:" not in texts[4]


@pytest.mark.parametrize(("flags", "message"), [
    (["--set", "d_model=10", "--set", "n_heads=3"], "d_model (10) must be divisible by n_heads (3)"),
    (["--set", "batch_size=0"], "every size and rate must be positive"),
    (["--set", "content_index=ivf"], "content_index must be one of"),
])
def test_impossible_settings_are_refused_before_any_work(tmp_path, tiny_movielens, capsys, flags, message):
    assert main(["evaluate", "--dataset", str(tiny_movielens), "--run", str(tmp_path / "run"), *flags]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_repeated_calls_log_once_to_the_current_stderr(tmp_path, capsys):
    for _ in range(3):
        main(["evaluate", "--dataset", str(tmp_path / "missing"), "--run", str(tmp_path / "run")])
    handlers = [h for h in logging.getLogger("recsys").handlers if h.get_name() == "sidrec"]
    assert len(handlers) == 1
    logging.getLogger("recsys").info("hello")
    assert capsys.readouterr().err.count("recsys: hello") == 1


def test_evaluate_over_seeds_summarises_recomputable_per_user_figures(tiny_run, tiny_movielens, tmp_path, capsys):
    import shutil

    run = tmp_path / "seeds"
    run.mkdir()
    for name in ("movies.parquet", "embeddings.parquet", "sids.parquet", "sid_labels.parquet", "sid_quality.json"):
        shutil.copy(tiny_run["a"] / name, run / name)
    models = ["popularity", "markov", "sid-generative"]
    args = ["--dataset", str(tiny_movielens), "--run", str(run), *FAST, "--models", *models]
    assert main(["evaluate", *args, "--seeds", "1", "2"]) == 0
    assert "sid-generative vs popularity:" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["seeds"] == [1, 2] and list(metrics["per_seed"]) == ["1", "2"]
    assert [p["baseline"] for p in metrics["paired"]] == ["popularity", "markov"]
    # per-user NDCG@10 recomputed from each seed's prediction files with a plain loop, then averaged
    targets = pd.read_parquet(run / "seed-1" / "test_targets.parquet").set_index("user_id")["movie_id"]
    for model in models:
        gains = []
        for seed in (1, 2):
            predictions = pd.read_parquet(run / f"seed-{seed}" / "predictions" / f"{model}.parquet")
            gain = {}
            for user, rows in predictions.groupby("user_id"):
                top = rows.sort_values("rank")["movie_id"].tolist()[:10]
                hit = targets[user] in top
                gain[user] = 1 / np.log2(top.index(targets[user]) + 2) if hit else 0.0
            gains.append(pd.Series(gain).sort_index())
        mean = (gains[0] + gains[1]) / 2
        assert metrics["models"][model]["ndcg@10"] == pytest.approx(mean.mean(), abs=1e-12)
        per_user = pd.read_parquet(run / "per_user.parquet").set_index("user_id")[model]
        np.testing.assert_allclose(per_user.to_numpy(), mean.to_numpy(), atol=1e-12)
    sds = [metrics["sd"][m]["ndcg@10"] for m in models]
    assert sds[0] == 0.0 and sds[2] is not None  # popularity learns nothing seeded
    # one directory, one evaluation: a single-seed evaluate into it is refused
    assert main(["evaluate", *args]) == 2
    assert "several seeds" in capsys.readouterr().err
