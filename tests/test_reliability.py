"""Bad data through the real CLI: no silently wrong figures (issue 14)."""

import json
import shutil

from helpers import FAST

from recsys.cli import main


def test_every_rating_twice_still_evaluates_every_user(tiny_movielens, tiny_sentence_encoder, tmp_path, caplog):
    """Duplicated u.data rows used to make each test target equal the validation target, inside the
    excluded history: every metric of every model was 0.0, with exit status 0."""
    data = tmp_path / "doubled"
    shutil.copytree(tiny_movielens, data)
    rows = (data / "u.data").read_text(encoding="latin-1")
    (data / "u.data").write_text(rows + rows, encoding="latin-1")
    run = tmp_path / "run"
    with caplog.at_level("WARNING"):
        assert main(["run", "--dataset", str(data), "--encoder", str(tiny_sentence_encoder), "--run", str(run),
                     "--sid-set", "codebook_size=8", "--sid-set", "max_epochs=20", "--models", "popularity", "markov",
                     *FAST]) == 0
    assert "each user keeps only the last rating" in caplog.text
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_users"] == 60
    assert all(m["recall@20"] > 0 for m in metrics["models"].values())
