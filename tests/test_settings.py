"""`--set` values are checked against their fields' types before any work (issue 14, defects 7 and 9)."""

import pytest

from recsys.models.config import recommender_config
from rqsid.lightning import RQVAETrainingConfig
from rqsid.model import RQVAEConfig
from rqsid.settings import route, typed_value


@pytest.mark.parametrize("setting, value, message", [
    ("lr", "abc", "lr must be a number"),
    ("batch_size", "abc", "batch_size must be an integer"),
    ("max_epochs", 1.5, "max_epochs must be an integer"),
    ("max_epochs", True, "max_epochs must be an integer"),
    ("item_embedding", "abc", "item_embedding must be true or false"),
    ("lr", float("inf"), "lr must be a finite number"),
    ("max_minutes", float("nan"), "max_minutes must be a finite number"),
    ("sampling", 3, "sampling must be a word"),
])
def test_wrong_types_are_refused_with_the_settings_name(setting, value, message):
    with pytest.raises(ValueError, match=message):
        recommender_config({setting: value})


def test_values_are_converted_to_their_fields_types():
    cfg = recommender_config({"models": "popularity,markov", "lr": 1, "max_minutes": None, "dropout": 0})
    assert cfg.models == ("popularity", "markov")  # not ("p", "o", ...)
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float) and cfg.training.max_minutes is None
    assert recommender_config({"models": ["itemknn"]}).models == ("itemknn",)
    assert typed_value(RQVAEConfig, "hidden_dims", [64, 32]) == (64, 32)
    with pytest.raises(ValueError, match="hidden_dims must be an integer"):
        typed_value(RQVAEConfig, "hidden_dims", ["a"])
    routed = route({"lr": 0.01, "codebook_size": 8}, {"model": RQVAEConfig, "training": RQVAETrainingConfig})
    assert routed == {"model": {"codebook_size": 8}, "training": {"lr": 0.01}}
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['nope'\]"):
        route({"nope": 1}, {"model": RQVAEConfig})


def test_a_validation_interval_longer_than_training_is_refused():
    with pytest.raises(ValueError, match="val_every"):
        recommender_config({"max_epochs": 1})  # val_every defaults to 2
    assert recommender_config({"max_epochs": 1, "val_every": 1}).training.max_epochs == 1


@pytest.mark.parametrize("pair, named", [
    (["--set", "lr=abc"], "lr"), (["--set", "max_epochs=1.5"], "max_epochs"), (["--set", "models=foo"], "foo"),
    (["--set", "max_epochs=1"], "val_every"), (["--set", "max_minutes=NaN"], "max_minutes"),
    (["--sid-set", "codebook_size=abc"], "codebook_size"),
    (["--set", "head_advance=bogus"], "head_advance"), (["--set", "hybrid_candidates=0"], "hybrid_candidates"),
    (["--set", "hybrid_dense_weight=-1"], "hybrid_dense_weight"),
    (["--set", "head_softmax=tree"], "head_softmax"), (["--set", "head_nodes=maybe"], "head_nodes"),
    (["--set", "markov_last=0"], "markov_last"), (["--set", "itemknn_decay=1.5"], "itemknn_decay"),
    (["--set", "content_decay=0"], "content_decay"), (["--set", "itemknn_neighbours=0"], "itemknn_neighbours"),
])
def test_the_cli_refuses_before_any_work(pair, named, tiny_movielens, tmp_path, capsys):
    from recsys.app.cli import main

    run = tmp_path / "run"
    assert main(["run", "--dataset", str(tiny_movielens), "--run", str(run), *pair]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sidrec: error:") and named in err[0]
    assert not run.exists()  # nothing started: not even the texts were encoded
