"""Collaborative factors for the tokenizer's input: training interactions only, seeded, wired into a run."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.data.collaborative import (
    TextToFactors,
    factors_from_text,
    fill_unrated,
    interaction_matrix,
    item_factors,
    tokenizer_input,
)
from recsys.data.splits import Catalogue, leave_one_out


def ratings_frame(rng, users: int = 30, items: int = 20, per_user: int = 8) -> pd.DataFrame:
    rows = [(u, int(m), 3, 1000 * u + t) for u in range(1, users + 1)
            for t, m in enumerate(rng.choice(np.arange(1, items + 1), per_user, replace=False))]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


def test_interaction_matrix_counts_each_movie_once_per_user():
    matrix = interaction_matrix([np.array([0, 2, 2]), np.array([1])], 3)
    assert matrix.toarray().tolist() == [[1, 0, 1], [0, 1, 0]]


def test_factors_are_normalised_seeded_and_zero_for_unrated_movies():
    sequences = [np.array([0, 1, 2]), np.array([1, 2, 3]), np.array([0, 3]), np.array([2, 3, 1])]
    factors = item_factors(sequences, 6, dims=2, seed=0)  # movies 4 and 5: never in training
    assert factors.shape == (6, 2)
    assert np.allclose(np.linalg.norm(factors[:4], axis=1), 1.0) and not factors[4:].any()
    assert np.array_equal(factors, item_factors(sequences, 6, dims=2, seed=0))
    with pytest.raises(ValueError, match="collaborative_dims"):
        item_factors(sequences, 6, dims=4, seed=0)


def test_held_out_ratings_never_reach_the_tokenizer_input():
    """Changing every user's validation and test movies leaves the input unchanged; changing a training
    rating changes it."""
    rng = np.random.default_rng(0)
    ratings = ratings_frame(rng)
    movie_ids = np.arange(1, 41)  # users rate movies 1-20; 21-40 are for the moved held-out ratings
    text = rng.normal(size=(40, 5)).astype(np.float32)
    before = tokenizer_input(text, ratings, movie_ids, dims=3, split="leave-one-out", seed=0).vectors
    assert before.shape == (40, 8) and np.array_equal(before[:, :5], text)
    split = leave_one_out(ratings, Catalogue(movie_ids))
    held_out = ratings.groupby("user_id").tail(2).index  # the validation and test ratings (time order)
    moved = ratings.copy()
    moved.loc[held_out, "movie_id"] += 20  # to movies nobody rated (re-rating one would drop a training row)
    assert not np.array_equal(leave_one_out(moved, Catalogue(movie_ids)).test_target, split.test_target)
    moved_input = tokenizer_input(text, moved, movie_ids, dims=3, split="leave-one-out", seed=0)
    assert np.array_equal(moved_input.vectors, before)
    trained = ratings.groupby("user_id").head(3).index
    changed = ratings.copy()
    changed.loc[trained, "movie_id"] += 20
    assert not np.array_equal(tokenizer_input(text, changed, movie_ids, dims=3, split="leave-one-out", seed=0).vectors,
                              before)


def test_run_with_rq_kmeans_and_collaborative_input(tiny_movielens, tiny_sentence_encoder, tmp_path):
    from helpers import FAST

    from recsys.app.cli import main
    from rqsid.model import RQVAE

    run = tmp_path / "run"
    assert main(["run", "--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder), "--run",
                 str(run), "--sid-preset", "rq-kmeans", "--sid-collaborative", "4", "--sid-set", "codebook_size=8",
                 "--models", "popularity", "sid-generative", *FAST]) == 0
    quality = json.loads((run / "sid_quality.json").read_text())["presets"]["rq-kmeans"]
    assert quality["fit"] == "kmeans" and quality["unique_sids"]
    quantizer = RQVAE.from_pretrained(run / "quantizer")
    assert quantizer.config.input_dim == 16 + 4  # the tiny encoder's 16 text dimensions + 4 factors
    sids = pd.read_parquet(run / "sids.parquet")
    assert len(sids) == 48 and sids["sid"].is_unique
    assert json.loads((run / "metrics.json").read_text())["models"]["sid-generative"]["ndcg@10"] >= 0
    # a text query has no interactions: it is quantised with zero collaborative inputs, on a real prefix
    from recsys.app import explain
    from recsys.runs.finished_run import FinishedRun

    found = explain.search(FinishedRun(run), "the toy story comedy", k=3)
    path = found.query["sid_path"]
    assert len(path.split("-")) == 3 and sids["sid"].str.startswith(path + "-").any()


def test_collaborative_only_input_is_the_factors_alone():
    rng = np.random.default_rng(0)
    ratings, movie_ids = ratings_frame(rng), np.arange(1, 21)
    text = rng.normal(size=(20, 5)).astype(np.float32)
    both = tokenizer_input(text, ratings, movie_ids, dims=3, split="leave-one-out", seed=0).vectors
    alone = tokenizer_input(text, ratings, movie_ids, dims=3, split="leave-one-out", seed=0, text=False).vectors
    assert alone.shape == (20, 3) and np.array_equal(alone, both[:, 5:])


def test_collaborative_only_needs_factors():
    from recsys.runs.sid_stage import SidConfig

    with pytest.raises(ValueError, match="collaborative_dims > 0"):
        SidConfig(collaborative_only=True)
    assert SidConfig(collaborative_dims=4, collaborative_only=True).collaborative_only


def test_run_with_collaborative_ids(tiny_movielens, tiny_sentence_encoder, tmp_path, capsys):
    """SIDs from the interaction factors alone: unique, of the configured length, made from `dims` inputs;
    free-text search, which has no factors to give, is a one-line error."""
    from helpers import FAST

    from recsys.app.cli import main
    from rqsid.model import RQVAE

    run = tmp_path / "run"
    assert main(["run", "--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder), "--run",
                 str(run), "--sid-collaborative", "4", "--sid-collaborative-only", "--sid-set", "codebook_size=8",
                 "--models", "popularity", "sid-generative", *FAST]) == 0
    assert RQVAE.from_pretrained(run / "quantizer").config.input_dim == 4
    sids = pd.read_parquet(run / "sids.parquet")
    assert len(sids) == 48 and sids["sid"].is_unique and (sids["sid"].str.count("-") == 3).all()
    assert json.loads((run / "metrics.json").read_text())["models"]["sid-generative"]["ndcg@10"] >= 0
    capsys.readouterr()
    assert main(["search", "the toy story comedy", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sidrec:")]
    assert len(lines) == 1 and "collaborative factors alone" in lines[0] and "Traceback" not in err


@pytest.mark.parametrize(("preset", "flags", "expected"), [
    ("ml-1m", {}, (64, True, "text")),  # the preset's collaborative IDs, unrated movies' factors from text
    ("ml-1m", {"sid_collaborative": 0}, (0, False, "zero")),  # text SIDs
    ("ml-1m", {"sid_collaborative_only": False}, (64, False, "text")),  # text + factors
    ("ml-1m", {"sid_unrated_factors": "zero"}, (64, True, "zero")),
    ("ml-1m", {"sid_collaborative": 32, "sid_unrated_factors": "text"}, (32, True, "text")),
    ("ml-100k", {}, (0, False, "zero")),
    ("ml-100k", {"sid_collaborative": 16, "sid_collaborative_only": True}, (16, True, "zero")),
])
def test_the_tokenizer_input_is_the_presets_unless_a_run_sets_it(preset, flags, expected):
    from recsys.runs.pipeline import RunOptions, run_configs

    _, cfg = run_configs(RunOptions(preset=preset, **flags))
    assert (cfg.collaborative_dims, cfg.collaborative_only, cfg.unrated_factors) == expected


def test_factors_alone_without_factors_is_refused_on_the_command_line(tiny_movielens, tmp_path, capsys):
    from recsys.app.cli import main

    assert main(["run", "--preset", "ml-1m", "--dataset", str(tiny_movielens), "--run", str(tmp_path / "r"),
                 "--sid-collaborative", "0", "--sid-collaborative-only"]) == 2
    assert "collaborative_only needs collaborative_dims" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_unrated_movies_get_the_factors_their_text_predicts():
    """Factors that are a linear function of the text: a movie whose row was zeroed (no training rating) gets
    back its own direction, and every rated row is left as it was."""
    rng = np.random.default_rng(0)
    text = rng.normal(size=(200, 12)).astype(np.float32)
    truth = text @ rng.normal(size=(12, 4)).astype(np.float32)
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    factors = truth.copy()
    factors[:10] = 0.0  # ten movies nobody rated in training
    filled = factors_from_text(factors, text)
    np.testing.assert_array_equal(filled[10:], truth[10:])
    np.testing.assert_allclose(np.linalg.norm(filled[:10], axis=1), 1.0, rtol=1e-5)
    assert (np.sum(filled[:10] * truth[:10], axis=1) > 0.99).all()  # cosine with the true factors


def test_the_text_to_factors_map_round_trips_and_is_what_filled_the_factors(tmp_path):
    rng = np.random.default_rng(1)
    text = rng.normal(size=(60, 8)).astype(np.float32)
    factors = text @ rng.normal(size=(8, 3)).astype(np.float32)
    factors /= np.linalg.norm(factors, axis=1, keepdims=True)
    factors[:5] = 0.0
    filled, text_to_factors = fill_unrated(factors, text)
    assert text_to_factors.weight.shape == (3, 8) and text_to_factors.bias.shape == (3,)
    text_to_factors.save(tmp_path / "map.safetensors")
    loaded = TextToFactors.load(tmp_path / "map.safetensors")
    np.testing.assert_array_equal(loaded(text[:5]), filled[:5])
    unchanged, kept = fill_unrated(filled, text)  # every movie rated: nothing to fill, the map still made
    np.testing.assert_array_equal(unchanged, filled)
    assert kept is not None and fill_unrated(np.zeros_like(filled), text)[1] is None


def test_search_places_a_text_query_among_collaborative_ids_through_the_saved_map(
        tiny_movielens, tiny_sentence_encoder, tmp_path, capsys):
    """With text-predicted factors for unrated movies the run keeps the map, so a free-text query gets
    factors, a quantized SID and a branch, as a cold movie did; without the map it is refused."""
    from helpers import FAST

    from recsys.app.cli import main
    from recsys.app.explain import query_input
    from recsys.runs.finished_run import FinishedRun

    run = tmp_path / "run"
    assert main(["run", "--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder), "--run",
                 str(run), "--split", "cold-start", "--sid-collaborative", "4", "--sid-collaborative-only",
                 "--sid-unrated-factors", "text", "--sid-preset", "rq-kmeans", "--sid-set", "codebook_size=8",
                 "--models", "sid-generative", *FAST]) == 0
    text_to_factors = FinishedRun(run).text_to_factors()
    assert text_to_factors is not None and text_to_factors.weight.shape[0] == 4
    capsys.readouterr()
    assert main(["search", "the toy story comedy", "--run", str(run), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["query"]["quantized_sid"].split("-")) == 3 and result["lists"]["sid-prefix"]
    width = text_to_factors.weight.shape[1]  # the encoder's
    vector = np.ones(width, np.float32) / np.sqrt(width)
    np.testing.assert_array_equal(query_input(vector, 4, text_to_factors), text_to_factors(vector[None])[0])
    assert query_input(vector, width + 4, text_to_factors).shape == (width + 4,)  # text, the factors appended
    with pytest.raises(ValueError, match="zero factors for unrated movies"):
        query_input(vector, 4, None)
    out = tmp_path / "push"
    assert main(["push", "--run", str(run), "--repo", "someone/collab", "--to-dir", str(out)]) == 0
    from huggingface_hub import ModelCard  # the pushed RQ-VAE carries the map and says what it reads

    assert (out / "collab-rqvae" / "text_to_factors.safetensors").read_bytes() == (
        run / "quantizer" / "text_to_factors.safetensors").read_bytes()
    card = ModelCard.load(out / "collab-rqvae" / "README.md").text
    assert "4 SVD factors of a movie's training ratings" in card and "(B, 4) float" in card


def test_unrated_factors_need_factors_and_a_known_name():
    from recsys.runs.sid_stage import SidConfig

    with pytest.raises(ValueError, match="unrated_factors needs collaborative_dims"):
        SidConfig(unrated_factors="text")
    with pytest.raises(ValueError, match="unrated_factors must be one of"):
        SidConfig(collaborative_dims=4, unrated_factors="mean")


def test_collaborative_ids_give_cold_movies_their_own_branches_with_text_factors(tiny_movielens,
                                                                                 tiny_sentence_encoder, tmp_path):
    """On a cold-start split, collaborative IDs put every cold movie on one zero vector; with
    --sid-unrated-factors text their inputs differ, and so do their SID prefixes."""
    from helpers import FAST

    from recsys.app.cli import main
    from recsys.data.movielens import load_movielens
    from recsys.data.splits import make_split

    def cold_prefixes(run, extra):
        assert main(["run", "--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder), "--run",
                     str(run), "--split", "cold-start", "--sid-collaborative", "4", "--sid-collaborative-only",
                     *extra, "--sid-preset", "rq-kmeans", "--sid-set", "codebook_size=8", "--models", "popularity",
                     *FAST]) == 0
        sids = pd.read_parquet(run / "sids.parquet")
        split = make_split("cold-start", load_movielens(str(tiny_movielens)).ratings,
                           Catalogue(sids["movie_id"].to_numpy()))
        assert len(split.cold_items) > 2
        return sids["sid"].iloc[split.cold_items].str.rsplit("-", n=1).str[0]  # the codes before the collision token

    assert cold_prefixes(tmp_path / "zero", []).nunique() == 1
    assert cold_prefixes(tmp_path / "text", ["--sid-unrated-factors", "text"]).nunique() > 1
