"""Run presets and the report's tables."""

import warnings

import pytest

from recsys.models.config import recommender_config
from recsys.runs.figures import training_curves
from recsys.runs.presets import RUN_PRESETS, get_run_preset
from recsys.runs.report import gap_sentence, results_table, to_markdown


def metrics(dataset: str, dense: float, generative: float) -> dict:
    row = lambda n: {"recall@5": n, "recall@10": 2 * n, "recall@20": 3 * n,  # noqa: E731
                     "ndcg@5": n / 2, "ndcg@10": n, "ndcg@20": 1.5 * n}
    return {"dataset": dataset, "models": {"faiss-dense": row(dense), "sid-generative": row(generative)}}


def test_ml1m_table_marks_published_anchors_and_sorts_by_ndcg():
    table = results_table(metrics("ml-1m", dense=0.17, generative=0.12))
    assert list(table.index[:3]) == ["HSTU-large", "HSTU", "faiss-dense"]
    assert table.loc["SASRec", "source"] == "published" and table.loc["SASRec", "ndcg@10"] == 0.1603
    assert table.loc["sid-generative", "source"] == "this run"
    assert "| SASRec | published |" in to_markdown(table)


def test_datasets_without_published_figures_show_only_this_run():
    table = results_table(metrics("ml-100k", dense=0.1, generative=0.05))
    assert set(table["source"]) == {"this run"}


def test_gap_sentence_says_by_how_much():
    assert gap_sentence(metrics("ml-1m", dense=0.10, generative=0.08)).startswith(
        "SID-generative is 20.0% behind")
    assert "ahead of" in gap_sentence(metrics("ml-1m", dense=0.10, generative=0.11))


@pytest.mark.parametrize("name", sorted(RUN_PRESETS))
def test_every_run_preset_makes_a_valid_recommender_config(name):
    preset = get_run_preset(name)
    cfg = recommender_config(preset.recommender)
    assert cfg.backbone.max_len == preset.recommender.get("max_len", 50)


def test_unknown_run_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown run preset 'ml-2m'"):
        get_run_preset("ml-2m")


def test_training_curves_of_a_run_without_learned_recommenders_warn_of_nothing(tmp_path):
    # A run of the count-based models alone has the RQ-VAE's log and no recommender's: the figure is made,
    # its recommender panels say why they are empty, and matplotlib has no empty legend to warn about
    logs = tmp_path / "rqvae" / "logs"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("epoch,val/reconstruction,val/quantization,val/loss\n"
                                      "0,0.5,0.1,0.6\n1,0.4,0.1,0.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = training_curves(tmp_path)
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
