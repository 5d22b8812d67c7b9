"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import FAST

# Fixtures that run the pipeline or encode texts: a test that uses one is `slow` (make test-fast skips it).
SLOW_FIXTURES = {"tiny_run", "tiny_sentence_encoder"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def isolated_data_home(tmp_path_factory: pytest.TempPathFactory):
    """Tests never read or write the user's data home (./data): caches and downloads go to a temp folder."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SIDREC_DATA", str(tmp_path_factory.mktemp("data-home")))
        yield


# A WordPiece vocabulary just big enough for short English titles: specials, characters, a few words.
_TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789().,:;'!?-&")
    + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    + ["the", "toy", "story", "comedy", "drama", "genres", "animation", "children", "##s"]
)


@pytest.fixture(scope="session")
def tiny_sentence_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real, randomly initialised sentence-transformers folder (BERT, 16-d, mean pooling).

    Exercises the same save/load/encode code paths as a production model, in well under a second and
    without any network access.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny-encoder")
    bert_dir = root / "bert"
    bert_dir.mkdir()
    (bert_dir / "vocab.txt").write_text("\n".join(_TINY_VOCAB) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(_TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(bert_dir)
    BertTokenizerFast(vocab_file=str(bert_dir / "vocab.txt")).save_pretrained(bert_dir)
    transformer = Transformer(str(bert_dir), max_seq_length=48)
    model = SentenceTransformer(modules=[transformer, Pooling(config.hidden_size)], device="cpu")
    model_dir = root / "sentence-encoder"
    model.save(str(model_dir))
    return model_dir


@pytest.fixture
def rng():
    """A seeded numpy generator, fresh per test."""
    import numpy as np

    return np.random.default_rng(12345)


@pytest.fixture
def clustered_embeddings(rng):
    """(240, 24) unit-norm vectors around 8 well-separated centres, and each vector's cluster id."""
    import numpy as np

    centres = rng.normal(size=(8, 24)) * 3
    labels = np.repeat(np.arange(8), 30)
    points = centres[labels] + rng.normal(scale=0.3, size=(len(labels), 24))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points.astype(np.float32), labels


ML100K_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                 "Thriller", "War", "Western"]


@pytest.fixture(scope="session")
def tiny_movielens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ML-100K-format release (u.data, u.item; latin-1, exact field layout) with real structure:
    60 users who each mostly watch one of four genres, in an order that repeats, over 48 movies."""
    import numpy as np

    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("tiny-ml-100k")
    words = ["toy", "story", "comedy", "drama", "the", "night", "space", "love"]
    items = []
    for movie in range(1, 49):
        genre = 1 + (movie - 1) % 4  # Action, Adventure, Animation, Children's
        flags = ["1" if g == genre else "0" for g in range(19)]
        title = f"{words[movie % 8].title()} {words[(movie // 8) % 8]} {movie} ({1980 + movie % 20})"
        items.append("|".join([str(movie), title, "01-Jan-1995", "", "http://example.org", *flags]))
    (root / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    rows = []
    for user in range(1, 61):
        genre = user % 4
        favourites = [m for m in range(1, 49) if (m - 1) % 4 == genre]
        others = [m for m in range(1, 49) if (m - 1) % 4 != genre]
        count = int(rng.integers(12, 20))
        seen = list(rng.permutation(favourites))[: count - 3] + list(rng.choice(others, 3, replace=False))
        for step, movie in enumerate(seen):
            rows.append(f"{user}\t{movie}\t{int(rng.integers(1, 6))}\t{880000000 + 1000 * step + user}")
    (root / "u.data").write_text("\n".join(rows) + "\n", encoding="latin-1")
    return root


SID_FAST = {"max_epochs": 20, "codebook_size": 8}


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_movielens, tiny_sentence_encoder):
    """Two finished tiny runs, shared by every test that reads a run.

    Run "a" calls `sids` then `evaluate`; run "b" calls `run`, which must give the same results, with the
    models trained in the opposite order, which must not matter either."""
    from recsys.app.cli import main

    home = tmp_path_factory.mktemp("home")
    runs = {name: home / "runs" / name for name in ("a", "b")}
    common = ["--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder)]
    sid_set = [arg for key, value in SID_FAST.items() for arg in ("--set", f"{key}={value}")]
    assert main(["sids", *common, "--run", str(runs["a"]), *sid_set]) == 0
    from recsys.runs.presets import RUN_PRESETS

    # the preset's own settings, so that `sids` + `evaluate` and `run --preset ml-100k` ask for the same thing
    preset = [arg for key, value in RUN_PRESETS["ml-100k"].recommender.items() for arg in ("--set", f"{key}={value}")]
    assert main(["evaluate", *common, "--run", str(runs["a"]), *preset, *FAST]) == 0
    from recsys.models import DEFAULT_MODELS as MODELS

    reversed_models = list(MODELS)[::-1]
    sid_set_b = [arg.replace("--set", "--sid-set") for arg in sid_set]
    assert main(["run", "--preset", "ml-100k", *common, "--run", str(runs["b"]), *sid_set_b, *FAST,
                 "--models", *reversed_models]) == 0
    return runs
