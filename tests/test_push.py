"""`sidrec push --to-dir`: the three folders a push would upload load back with the libraries' own
readers, their cards parse, and nothing of MovieLens beyond movie ids leaves the run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import load_dataset
from huggingface_hub import DatasetCard, ModelCard

from recsys.app.cli import main
from recsys.nets.generative import SidGenerativeModel
from rqsid import RQVAE


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("push")
    assert main(["push", "--run", str(tiny_run["b"]), "--repo", "someone/tiny", "--to-dir", str(out)]) == 0
    return tiny_run["b"], out


def test_the_three_folders_are_named_after_the_repo(exported):
    _, out = exported
    assert sorted(p.name for p in out.iterdir()) == ["tiny-rqvae", "tiny-sid-generative", "tiny-sids"]


def test_the_rqvae_loads_back_and_gives_the_runs_sids(exported):
    run, out = exported
    model = RQVAE.from_pretrained(str(out / "tiny-rqvae")).eval()
    embeddings = np.stack(pd.read_parquet(run / "embeddings.parquet")["embedding"].to_numpy())
    with torch.no_grad():
        learned = model(torch.as_tensor(embeddings, dtype=torch.float32)).semantic_ids.numpy()
    sids = pd.read_parquet(run / "sids.parquet")
    levels = learned.shape[1]
    np.testing.assert_array_equal(learned, sids[[f"sid_{k}" for k in range(levels)]].to_numpy())


def test_the_sid_model_loads_back_with_the_runs_weights(exported):
    run, out = exported
    pushed = SidGenerativeModel.from_pretrained(str(out / "tiny-sid-generative"))
    saved = SidGenerativeModel.from_pretrained(str(run / "models" / "sid-generative"))
    for (name, a), (_, b) in zip(pushed.state_dict().items(), saved.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert json.loads((out / "tiny-sid-generative" / "recommender.json").read_text())["model"] == "sid-generative"


def test_the_sid_table_loads_as_a_dataset_with_ids_and_codes_only(exported):
    run, out = exported
    table = load_dataset("parquet", data_files=str(out / "tiny-sids" / "data" / "*.parquet"), split="train")
    sids = pd.read_parquet(run / "sids.parquet")
    assert table.column_names == ["movie_id", "sid", *[c for c in sids.columns if c.startswith("sid_")]]
    assert table["movie_id"] == sids["movie_id"].tolist() and table["sid"] == sids["sid"].tolist()


def test_the_cards_parse_and_say_how_to_load_what_was_measured_and_the_licence(exported):
    run, out = exported
    rqvae = ModelCard.load(out / "tiny-rqvae" / "README.md")
    model = ModelCard.load(out / "tiny-sid-generative" / "README.md")
    table = DatasetCard.load(out / "tiny-sids" / "README.md")
    assert 'RQVAE.from_pretrained("someone/tiny-rqvae")' in rqvae.text
    assert 'SidGenerativeModel.from_pretrained("someone/tiny-sid-generative")' in model.text
    ndcg = json.loads((run / "metrics.json").read_text())["models"]["sid-generative"]["ndcg@10"]
    assert f"{ndcg:.4f}" in model.text
    assert table.data.configs[0]["data_files"] == "data/sids.parquet"
    for card in (rqvae, model, table):
        assert "may not be redistributed" in card.text and card.data.license


def test_a_run_without_a_trained_sid_model_is_a_one_line_error(tmp_path, capsys):
    assert main(["push", "--run", str(tmp_path), "--repo", "someone/x", "--to-dir", str(tmp_path / "out")]) == 2
    assert "is missing" in capsys.readouterr().err
    assert main(["push", "--run", str(tmp_path), "--repo", "no-slash", "--to-dir", str(tmp_path / "out")]) == 2
