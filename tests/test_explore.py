"""The user-history helpers, the notebook that uses them (executed headless), and the report's figures."""

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from nbclient import NotebookClient

from recsys.app import explore
from recsys.models import DEFAULT_MODELS as MODELS
from recsys.runs.finished_run import FinishedRun

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore_user_histories.ipynb"


@pytest.fixture(scope="module")
def run(tiny_run):
    return FinishedRun(tiny_run["b"])


def test_per_user_ndcg_averages_to_the_runs_metrics(run):
    per_user = explore.per_user_ndcg(run, k=10)
    metrics = run.metrics["models"]
    assert len(per_user) == run.metrics["num_users"]
    for model in metrics:
        assert per_user[model].mean() == pytest.approx(metrics[model]["ndcg@10"], abs=1e-12)
    assert (per_user["history_length"] == run.ratings.groupby("user_id").size().loc[per_user.index] - 1).all()


def test_top_k_side_by_side_marks_the_held_out_movie(run):
    per_user = explore.per_user_ndcg(run, k=10)
    hit_user = int(per_user.index[per_user["sid-generative"] > 0][0])
    table = explore.top_k_side_by_side(run, hit_user, k=10)
    assert list(table.columns) == list(MODELS)
    marked = table["sid-generative"][table["sid-generative"].str.startswith(explore.HELD_OUT)]
    assert len(marked) == 1 and marked.iloc[0] == explore.HELD_OUT + table.attrs["held_out"]
    # the marked rank is the one NDCG@10 scored: 1 / log2(rank + 1)
    assert per_user.loc[hit_user, "sid-generative"] == pytest.approx(1 / np.log2(marked.index[0] + 1))


def test_tree_layout_keeps_shared_prefixes_together():
    paths = np.array([[1, 0, 0], [0, 5, 1], [1, 0, 2], [0, 5, 0], [0, 2, 7]])
    layout = explore.tree_layout(paths)
    assert layout[2] == {(0, 2, 7): 0.0, (0, 5, 0): 1.0, (0, 5, 1): 2.0, (1, 0, 0): 3.0, (1, 0, 2): 4.0}
    assert layout[1] == {(0, 2): 0.0, (0, 5): 1.5, (1, 0): 3.5}
    assert layout[0] == {(0,): 0.75, (1,): 3.5}  # the mean of its children, 0 and 1.5


def test_notebook_runs_headless_on_a_run(tiny_run, monkeypatch):
    monkeypatch.setenv("SIDREC_RUN", str(tiny_run["b"]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3  # history + genres, SID tree, length vs NDCG
    text = "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs)
    assert "held out:" in text and "sid-generative" in text
    assert not (NOTEBOOK.parent / "data").exists()  # it works from the repository root, never notebooks/


def test_report_has_its_figures_and_prefix_labels(tiny_run):
    run_dir = tiny_run["b"]
    report = (run_dir / "report.md").read_text()
    for name in ("metrics", "codebook_usage", "prefix_tree", "training_curves", "level_curves"):
        png = run_dir / "figures" / f"{name}.png"
        assert f"](figures/{name}.png)" in report
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    logged = pd.read_csv(run_dir / "train" / "sid-generative" / "logs" / "metrics.csv")
    levels = [f"val/nll/level{k}" for k in range(1, 5)]
    validated = logged.dropna(subset=["val/nll"])
    assert not validated.empty and set(levels) <= set(logged.columns)
    # the item's NLL is the sum of its levels' (means of per-row sums), as the dense model's is one softmax
    assert np.allclose(validated["val/nll"], validated[levels].sum(axis=1), rtol=1e-4)
    dense = pd.read_csv(run_dir / "train" / "faiss-dense" / "logs" / "metrics.csv")
    assert dense["val/nll"].dropna().gt(0).all()
    labels = pd.read_parquet(run_dir / "sid_labels.parquet")
    sids = pd.read_parquet(run_dir / "sids.parquet")
    assert set(labels.loc[labels["level"] == 1, "prefix"]) == set(sids["sid_0"].astype(str))
    assert labels.groupby("level")["size"].sum().eq(len(sids)).all()
    largest = labels[labels["level"] == 1].nlargest(1, "size").iloc[0]
    assert f"| {largest['prefix']} | {largest['size']} | {largest['label']} |" in report
    assert json.loads((run_dir / "timings.json").read_text())["command"] in report
