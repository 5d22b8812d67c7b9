"""Seeds aggregation and the paired statistic on hand-made cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.significance import format_mean_sd, paired_comparison, seed_summary
from recsys.runs.multiseed import summarise_seeds


def test_paired_comparison_of_hand_made_figures():
    a, b = np.array([1.0, 0.0, 1.0, 0.5]), np.array([0.0, 0.0, 0.5, 0.5])
    result = paired_comparison(a, b, model="x", baseline="y")
    # d = (1, 0, 0.5, 0): mean 0.375; a bootstrap mean of d can only lie in [0, 1]
    assert result.mean_difference == pytest.approx(0.375) and result.users == 4
    assert 0.0 <= result.ci_low <= 0.375 <= result.ci_high <= 1.0
    # Wilcoxon drops the two zeros; d = (1, 0.5) has ranks (2, 1), both positive: W- = 0, and the exact
    # two-sided p-value for n = 2 is 2 * P(W- = 0) = 2 * 1/4 = 0.5
    assert result.wilcoxon_p == pytest.approx(0.5)
    assert result.sentence() == f"x vs y: +0.3750 [{result.ci_low:+.4f}, {result.ci_high:+.4f}], Wilcoxon p = 0.5"


def test_paired_comparison_of_identical_models_is_exactly_zero():
    a = np.array([0.2, 0.0, 1.0])
    result = paired_comparison(a, a.copy())
    assert (result.mean_difference, result.ci_low, result.ci_high, result.wilcoxon_p) == (0.0, 0.0, 0.0, None)


def test_paired_comparison_finds_a_clear_difference_and_is_seeded():
    rng = np.random.default_rng(0)
    b = rng.random(500)
    a = b + 0.05 + rng.normal(0, 0.01, 500)
    first, again = paired_comparison(a, b, seed=3), paired_comparison(a, b, seed=3)
    assert first == again and first.ci_low > 0.04 and first.ci_high < 0.06 and first.wilcoxon_p < 1e-10


def test_paired_comparison_refuses_unpaired_figures():
    with pytest.raises(ValueError, match="equal length"):
        paired_comparison(np.zeros(3), np.zeros(4))


def test_seed_summary_mean_and_sample_sd():
    per_seed = {3: {"m": {"ndcg@10": 0.3}}, 1: {"m": {"ndcg@10": 0.1}}, 2: {"m": {"ndcg@10": 0.2}}}
    summary = seed_summary(per_seed)["m"]["ndcg@10"]
    assert summary["mean"] == pytest.approx(0.2) and summary["sd"] == pytest.approx(0.1)  # ddof = 1
    assert list(summary["values"]) == ["1", "2", "3"]
    assert format_mean_sd(summary) == "0.2000 ± 0.1000"
    assert seed_summary({1: {"m": {"ndcg@10": 0.1}}})["m"]["ndcg@10"]["sd"] is None


def write_seed(run, seed, ndcg_a, ndcg_b):
    folder = run / f"seed-{seed}"
    folder.mkdir(parents=True)
    models = {"sid-generative": {"ndcg@10": float(np.mean(ndcg_a))}, "faiss-dense": {"ndcg@10": float(np.mean(ndcg_b))}}
    (folder / "metrics.json").write_text(json.dumps({"dataset": "d", "split": "leave-one-out", "num_users": 3,
                                                     "models": models, "paired": []}))
    pd.DataFrame({"user_id": np.array([1, 2, 3], np.int32), "sid-generative": ndcg_a,
                  "faiss-dense": ndcg_b}).to_parquet(folder / "per_user.parquet")


def test_summarise_seeds_averages_per_user_figures_before_pairing(tmp_path):
    write_seed(tmp_path, 1, [1.0, 0.0, 0.5], [0.0, 0.0, 0.5])
    write_seed(tmp_path, 2, [0.0, 0.0, 0.5], [0.0, 1.0, 0.5])
    metrics = summarise_seeds(tmp_path, [1, 2])
    assert metrics["models"]["sid-generative"]["ndcg@10"] == pytest.approx((0.5 + 1 / 6) / 2)
    assert metrics["sd"]["faiss-dense"]["ndcg@10"] == pytest.approx(np.std([1 / 6, 0.5], ddof=1))
    per_user = pd.read_parquet(tmp_path / "per_user.parquet").set_index("user_id")
    np.testing.assert_allclose(per_user["sid-generative"], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(per_user["faiss-dense"], [0.0, 0.5, 0.5])
    (paired,) = metrics["paired"]  # d = (0.5, -0.5, 0): mean 0
    assert paired["baseline"] == "faiss-dense" and paired["mean_difference"] == pytest.approx(0.0)
    assert (tmp_path / "report.md").exists() and (tmp_path / "figures" / "seeds_ndcg10.png").exists()
    assert "0.3333 ± 0.2357" in (tmp_path / "report.md").read_text()


def test_summarise_seeds_names_an_unfinished_seed(tmp_path):
    write_seed(tmp_path, 1, [1.0, 0.0, 0.5], [0.0, 0.0, 0.5])
    with pytest.raises(FileNotFoundError, match="seed 2"):
        summarise_seeds(tmp_path, [1, 2])


def test_summarise_seeds_keeps_each_slice_over_seeds(tmp_path):
    """A cold-start run's slices (cold and warm targets) are summarised like the whole: mean and sample sd."""
    for seed, cold in ((1, 0.1), (2, 0.3)):
        write_seed(tmp_path, seed, [1.0, 0.0, 0.5], [0.0, 0.0, 0.5])
        path = tmp_path / f"seed-{seed}" / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics["slices"] = {"cold target": {"num_users": 1, "models": {"sid-generative": {"ndcg@10": cold}}},
                             "warm target": {"num_users": 2, "models": {"sid-generative": {"ndcg@10": 0.5}}}}
        path.write_text(json.dumps(metrics))
    slices = summarise_seeds(tmp_path, [1, 2])["slices"]
    assert slices["cold target"]["num_users"] == 1
    assert slices["cold target"]["models"]["sid-generative"]["ndcg@10"] == pytest.approx(0.2)
    assert slices["cold target"]["sd"]["sid-generative"]["ndcg@10"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert slices["warm target"]["sd"]["sid-generative"]["ndcg@10"] == pytest.approx(0.0)
    assert "Slice: cold target (1 users)" in (tmp_path / "report.md").read_text()
