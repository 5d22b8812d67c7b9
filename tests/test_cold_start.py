"""The cold-start split: cold movies reach no model's training, only the test targets; slices in a run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data.splits import Catalogue, cold_start, leave_one_out, make_split

N_ITEMS = 40


def ratings_frame(seed: int = 0, users: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(u, int(m), 4, 1000 * u + t) for u in range(1, users + 1)
            for t, m in enumerate(rng.choice(np.arange(1, N_ITEMS + 1), int(rng.integers(6, 14)), replace=False))]
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])


@pytest.fixture(scope="module")
def split():
    return cold_start(ratings_frame(), Catalogue(np.arange(1, N_ITEMS + 1)), fraction=0.2, seed=1)


def test_cold_movies_appear_only_as_test_targets(split):
    cold = set(split.cold_items.tolist())
    assert len(cold) == 8 and split.name == "cold-start"
    for u in range(len(split.user_ids)):
        assert not cold & set(split.train[u].tolist()) and int(split.valid_target[u]) not in cold
        assert not cold & set(split.test_inputs(u).tolist())
    assert split.cold_target().any() and not split.cold_target().all()
    assert np.array_equal(split.cold_target(), np.isin(split.test_target, split.cold_items))


def test_cold_start_is_leave_one_out_of_the_warm_sequences(split):
    """Each user keeps the last rating as the test target; the rest is their warm ratings, in order."""
    ratings = ratings_frame()
    catalogue = Catalogue(np.arange(1, N_ITEMS + 1))
    full = leave_one_out(ratings, catalogue)
    assert np.array_equal(full.test_target, split.test_target)  # every user here keeps >= 3 warm ratings
    for u in range(len(split.user_ids)):
        warm = [i for i in np.append(full.train[u], full.valid_target[u]) if i not in split.cold_items]
        assert [*split.train[u].tolist(), int(split.valid_target[u])] == warm
    again = make_split("cold-start", ratings, catalogue)  # the module's default fraction and seed
    assert len(again.cold_items) == round(0.1 * N_ITEMS)


def test_no_cold_movie_in_any_count_or_table(split, tmp_path):
    """Popularity counts, item-kNN co-occurrence, Markov transitions: zero for cold movies; the dense
    model's item table and the SID model's id table: cold rows untouched by training."""
    from recsys.models import REGISTRY, FitContext
    from recsys.models.config import recommender_config
    from recsys.nets.dense import DenseConfig, DenseSequentialModel
    from recsys.nets.generative import GenerativeConfig, SidGenerativeModel
    from recsys.train.fit import TrainingConfig, train_recommender

    cold = split.cold_items
    config = recommender_config({"itemknn_neighbours": 10, "markov_last": 2, "progress": False})
    ctx = FitContext(Catalogue(np.arange(1, N_ITEMS + 1)), np.eye(N_ITEMS, 8, dtype=np.float32),
                     np.array([[i // 8, i % 8, 0] for i in range(N_ITEMS)]), config, output_dir=tmp_path)
    assert not REGISTRY["popularity"].build(ctx).fit(split).counts[cold].any()
    similarity = REGISTRY["itemknn"].build(ctx).fit(split).similarity
    assert similarity[cold].nnz == 0 and similarity[:, cold].nnz == 0
    counts = REGISTRY["markov"].build(ctx).fit(split).counts
    assert counts[cold].nnz == 0 and counts[:, cold].nnz == 0
    training = TrainingConfig(batch_size=16, max_epochs=2, val_every=1, patience=2)
    small = {"d_model": 8, "n_layers": 1, "n_heads": 1, "max_len": 8, "num_items": N_ITEMS}
    sids = np.array([[i // 8, i % 8, 0] for i in range(N_ITEMS)])
    for model, table in ((DenseSequentialModel(DenseConfig(**small)), "item"),
                         (SidGenerativeModel(GenerativeConfig(**small, vocab_sizes=(5, 8, 1)), sids), "item")):
        before = getattr(model, table).weight.detach().clone()
        trained = train_recommender(model, split, N_ITEMS, training, output_dir=tmp_path / type(model).__name__,
                                    progress=False)
        after = getattr(trained, table).weight.detach()
        assert torch.equal(after[cold], before[cold])
        warm = np.setdiff1d(np.arange(N_ITEMS), cold)
        assert not torch.equal(after[warm], before[warm])


def test_cold_start_run_reports_both_slices(tiny_movielens, tiny_sentence_encoder, tmp_path):
    from helpers import FAST

    from recsys.app.cli import main

    run = tmp_path / "cold"
    assert main(["run", "--dataset", str(tiny_movielens), "--encoder", str(tiny_sentence_encoder), "--run", str(run),
                 "--split", "cold-start", "--sid-set", "codebook_size=8", "--sid-set", "max_epochs=20", *FAST]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    slices = metrics["slices"]
    assert set(slices) == {"cold target", "warm target"}
    assert slices["cold target"]["num_users"] + slices["warm target"]["num_users"] == metrics["num_users"]
    assert set(slices["warm target"]["models"]) == set(metrics["models"])
    # A model that never saw a cold movie and cannot score from content never ranks one first
    for model in ("popularity", "markov", "itemknn"):
        assert slices["cold target"]["models"][model]["recall@5"] == 0.0
    report = (run / "report.md").read_text()
    assert "## Slices" in report and "**cold target**" in report
    assert "| published |" not in report  # leave-one-out anchors are not comparable with this split


def test_dense_softmax_over_existing_movies_only():
    import torch.nn.functional as F

    from recsys.nets.dense import DenseConfig, DenseSequentialModel

    torch.manual_seed(0)
    model = DenseSequentialModel(DenseConfig(d_model=8, n_layers=1, n_heads=1, dropout=0.0, max_len=4, num_items=10))
    inputs, targets = torch.tensor([[-1, 1, 2, 3], [4, 5, 6, 7]]), torch.tensor([[-1, 2, 3, 4], [5, 6, 7, 0]])
    existing = torch.ones(10, dtype=torch.bool)
    existing[[8, 9]] = False
    h = model.hidden(inputs)[(inputs >= 0) & (targets >= 0)]
    expected = F.cross_entropy(h @ model.item.weight[:8].T, targets[(inputs >= 0) & (targets >= 0)])
    torch.testing.assert_close(model.loss(inputs, targets, existing=existing), expected)
    existing[0] = False  # a target that does not exist is refused
    with pytest.raises(ValueError, match="existing"):
        model.loss(inputs, targets, existing=existing)
