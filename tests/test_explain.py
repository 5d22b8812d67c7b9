"""`sidrec recommend / similar / search` on a finished tiny run: real models, real labels, --json, errors."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.app import explain
from recsys.app.cli import main
from recsys.models import DEFAULT_MODELS as MODELS
from recsys.runs.finished_run import FinishedRun, NotFoundError


@pytest.fixture(scope="module")
def run(tiny_run):
    return FinishedRun(tiny_run["b"])


def cli_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def sid_of(run, movie_id):
    return run.sid_text[run.catalogue.index_of(np.array([movie_id]))[0]]


@pytest.mark.parametrize("model", MODELS)
def test_recommend_gives_k_unseen_movies_with_a_reason(run, tiny_run, capsys, model):
    out = cli_json(capsys, "recommend", "--run", str(tiny_run["b"]), "--user", "7", "-k", "5", "--model", model,
                   "--json")
    rows = out["lists"][model]
    seen = set(run.history(7)["movie_id"])
    assert len(rows) == 5 and len({r["movie"]["movie_id"] for r in rows}) == 5
    assert not seen & {r["movie"]["movie_id"] for r in rows}
    assert all(r["reason"] for r in rows) and out["query"]["history_length"] == len(seen)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_generative_reasons_name_a_real_shared_prefix_and_its_label(run):
    result = explain.recommend(run, 7, "sid-generative", k=10)
    labels = run.labels.set_index("prefix")["label"]
    history_sids = [sid_of(run, m) for m in run.history(7)["movie_id"]]
    explained = [r for r in result.lists["sid-generative"] if r.shared.level]
    assert explained, "the tiny users watch one genre, so some recommendation shares a prefix"
    for r in explained:
        assert r.movie["sid"].startswith(r.shared.prefix + "-")
        assert any(s.startswith(r.shared.prefix + "-") for s in history_sids)
        assert r.shared.label == labels["-".join(r.shared.prefix.split("-")[:2])]
        assert f"shares SID prefix {r.shared.prefix} ({r.shared.label})" in r.reason
        assert r.shared.with_titles[0] in r.reason


def test_recommend_text_output_lists_history_then_top_k(tiny_run, capsys):
    assert main(["recommend", "--run", str(tiny_run["b"]), "--user", "7", "-k", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("User 7:") and "Top 3 by sid-generative:" in text and "  3. " in text


def test_unknown_user_movie_or_empty_query_exit_2(tiny_run, capsys):
    run_dir = str(tiny_run["b"])
    assert main(["recommend", "--run", run_dir, "--user", "999"]) == 2
    assert "unknown user 999" in capsys.readouterr().err
    assert main(["similar", "qqqq zzzz xxxx", "--run", run_dir]) == 2
    assert "no movie title matches 'qqqq zzzz xxxx'" in capsys.readouterr().err
    assert main(["search", "   ", "--run", run_dir]) == 2
    assert "empty query" in capsys.readouterr().err
    assert main(["recommend", "--run", str(tiny_run["b"] / "nope"), "--user", "7"]) == 2


def test_find_movie_exact_then_contained_then_fuzzy_with_suggestions(run):
    title = run.movies["title"].iloc[10]  # e.g. "Drama night 11 (1991)"
    bare = title.rsplit(" (", 1)[0]
    assert run.find_movie(title) == 10 and run.find_movie(bare.upper()) == 10
    assert run.find_movie(bare[:-1] + "x" + bare[-1:]) == 10  # one wrong letter: fuzzy
    with pytest.raises(NotFoundError, match="did you mean"):
        run.find_movie(bare[:-2] + "zzzzz")


def test_similar_puts_the_longest_shared_prefix_first(run, tiny_run, capsys):
    title = run.movies["title"].iloc[10]
    out = cli_json(capsys, "similar", title, "--run", str(tiny_run["b"]), "-k", "6", "--json")
    me = out["query"]["movie"]
    by_prefix, by_text = out["lists"]["sid-prefix"], out["lists"]["text-embedding"]
    levels = [r["shared"]["level"] for r in by_prefix]
    assert levels == sorted(levels, reverse=True) and levels[0] >= 1
    for r in by_prefix:
        assert me["sid"].startswith(r["shared"]["prefix"] + "-") and r["movie"]["sid"].startswith(r["shared"]["prefix"])
    cosines = [r["score"] for r in by_text]
    assert me["movie_id"] not in {r["movie"]["movie_id"] for r in by_prefix + by_text}
    assert cosines == sorted(cosines, reverse=True) and len(by_text) == 6
    assert set(out["query"]["prefix_labels"]) == {me["sid"].split("-")[0], "-".join(me["sid"].split("-")[:2])}


def test_search_quantizes_the_query_with_the_runs_model(run, tiny_run, capsys):
    out = cli_json(capsys, "search", "the toy story comedy", "--run", str(tiny_run["b"]), "-k", "4", "--json")
    query = out["query"]
    levels = run.sids.shape[1] - 1  # learned levels only
    assert len(query["quantized_sid"].split("-")) == len(query["sid_path"].split("-")) == levels
    by_prefix = out["lists"]["sid-prefix"]
    assert by_prefix[0]["movie"]["sid"].startswith(by_prefix[0]["shared"]["prefix"] + "-")
    assert query["sid_path"].startswith(by_prefix[0]["shared"]["prefix"])
    assert len(out["lists"]["text-embedding"]) == 4
    # the same text as a movie's own text lands on that movie's learned codes
    text = pd.read_parquet(tiny_run["b"] / "movies.parquet")["text"].iloc[3]
    again = explain.search(run, text, k=1)
    assert again.query["quantized_sid"] == again.query["sid_path"] == "-".join(map(str, run.sids[3, :-1]))
    assert again.lists["text-embedding"][0].movie["movie_id"] == run.catalogue.movie_ids[3]


def test_a_damaged_model_file_is_a_clear_error(tiny_run, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run["b"], copy)
    weights = copy / "models" / "sid-generative" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated, as by a full disk
    assert main(["recommend", "--run", str(copy), "--user", "7"]) == 2
    err = capsys.readouterr().err
    assert f"{weights.parent}: cannot load SidGenerativeModel" in err and "Traceback" not in err
