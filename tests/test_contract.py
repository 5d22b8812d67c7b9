"""Every registered recommender through the one contract: fit, recommend, save / load, no leakage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys.data.splits import Catalogue, SequenceSplit
from recsys.models import MODELS, REGISTRY, FitContext
from recsys.models.config import recommender_config

N_ITEMS, K = 30, 5
TINY = {"d_model": 8, "n_layers": 1, "n_heads": 2, "max_len": 6, "max_epochs": 2, "val_every": 1, "patience": 1,
        "batch_size": 16, "progress": False, "itemknn_neighbours": 5, "markov_last": 2}


def tiny_split(test_shift: int = 0) -> SequenceSplit:
    """12 users over 30 items; test_shift moves every test target (what no model may learn from)."""
    rng = np.random.default_rng(3)
    sequences = [rng.choice(N_ITEMS, size=int(rng.integers(8, 13)), replace=False) for _ in range(12)]
    test = np.array([s[-1] for s in sequences])
    test = np.array([next(i for i in range(t + test_shift, t + test_shift + N_ITEMS) if i % N_ITEMS not in s[:-1])
                     % N_ITEMS for t, s in zip(test, sequences, strict=True)])
    return SequenceSplit(name="leave-one-out", user_ids=np.arange(1, 13), train=[s[:-2] for s in sequences],
                         valid_target=np.array([s[-2] for s in sequences]), test_target=test, extra_train=[],
                         skipped_users=0)


def context(tmp_path, name: str) -> FitContext:
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(N_ITEMS, 8)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    sids = np.array([[i // 8, (i // 2) % 4, i % 2, 0] for i in range(N_ITEMS)])  # unique, 3 levels + 1
    config = recommender_config(TINY)
    return FitContext(Catalogue(np.arange(100, 100 + N_ITEMS)), embeddings, sids, config,
                      output_dir=tmp_path / "train" / name, progress=False)


def inputs_of(split: SequenceSplit) -> list[np.ndarray]:
    return [split.test_inputs(u) for u in range(len(split.user_ids))]


@pytest.fixture(scope="module", params=MODELS)
def fitted(request, tmp_path_factory):
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    torch.manual_seed(0)
    model = REGISTRY[name].build(context(tmp, name)).fit(tiny_split())
    return name, model, tmp


def test_recommend_ranks_k_unseen_items_best_first(fitted):
    name, model, _ = fitted
    split = tiny_split()
    histories = inputs_of(split)
    ranking = model.recommend(histories, K, users=split.user_ids)
    assert ranking.items.shape == ranking.scores.shape == (12, K)
    assert ranking.items.dtype == np.int64 and ranking.scores.dtype == np.float32
    for items, scores, history in zip(ranking.items, ranking.scores, histories, strict=True):
        assert len(set(items)) == K and not set(items) & set(history), name
        assert np.all(np.diff(scores) <= 1e-6), name
    # an explicit exclusion list replaces the history as the thing never recommended
    blocked = [np.arange(N_ITEMS - 20)] * len(histories)
    again = model.recommend(histories, K, exclude=blocked, users=split.user_ids)
    assert (again.items >= N_ITEMS - 20).all()


def test_save_then_load_gives_the_same_ranking(fitted):
    name, model, tmp = fitted
    split = tiny_split()
    model.save(tmp / "saved")
    loaded = REGISTRY[name].load(tmp / "saved", context(tmp, name))
    first = model.recommend(inputs_of(split), K, users=split.user_ids)
    second = loaded.recommend(inputs_of(split), K, users=split.user_ids)
    np.testing.assert_array_equal(first.items, second.items)
    np.testing.assert_allclose(first.scores, second.scores, rtol=1e-5, atol=1e-6)


def test_loading_another_models_folder_is_a_clear_error(fitted):
    name, model, tmp = fitted
    model.save(tmp / "saved-for-mismatch")
    other = next(m for m in MODELS if m != name)
    with pytest.raises(ValueError, match=f"holds a {name!r} model"):
        REGISTRY[other].load(tmp / "saved-for-mismatch", context(tmp, other))


@pytest.mark.parametrize("name", MODELS)
def test_test_targets_never_reach_a_model(tmp_path, name):
    """Moving every test target changes nothing a model learns: same ranking from the same inputs."""
    rankings = []
    for shift in (0, 7):
        torch.manual_seed(0)
        split = tiny_split(shift)
        model = REGISTRY[name].build(context(tmp_path / str(shift), name)).fit(split)
        rankings.append(model.recommend([split.valid_inputs(u) for u in range(12)], K, users=split.user_ids))
    assert not np.array_equal(tiny_split(0).test_target, tiny_split(7).test_target)
    np.testing.assert_array_equal(rankings[0].items, rankings[1].items)


def test_dense_validation_ranking_equals_its_faiss_test_ranking(tmp_path):
    """Validation ranks by torch top-k over the item table, the test stage by FAISS: the same ranking."""
    from recsys.data.inputs import exclusion_mask, left_pad

    model = REGISTRY["faiss-dense"].build(context(tmp_path, "faiss-dense")).fit(tiny_split())
    histories = inputs_of(tiny_split())
    faiss_ranking = model.recommend(histories, K)
    inputs = torch.as_tensor(left_pad(histories, model.net.config.max_len))
    items, scores = model.net.recommend(inputs, exclusion_mask(histories, N_ITEMS), K)
    np.testing.assert_array_equal(faiss_ranking.items, items.numpy())
    np.testing.assert_allclose(faiss_ranking.scores, scores.numpy(), rtol=1e-5, atol=1e-5)


def test_a_beam_narrower_than_the_ranked_k_is_refused():
    with pytest.raises(ValueError, match="cuts the top"):
        recommender_config({"beam_size": 10})
    assert recommender_config({"beam_size": 20}).model_settings["sid-generative"].beam_size == 20
    assert recommender_config({}).model_settings["sid-generative"].beam_size == 0


def test_beam_decoding_through_the_contract_scores_like_exact(tmp_path):
    """The same trained network ranked by beam search (width >= catalogue) and by exact scoring."""
    exact = REGISTRY["sid-generative"].build(context(tmp_path, "sid-generative")).fit(tiny_split())
    histories = inputs_of(tiny_split())
    first = exact.recommend(histories, K)
    exact.net.config.beam_size = N_ITEMS
    wide = exact.recommend(histories, K)
    np.testing.assert_array_equal(first.items, wide.items)
    np.testing.assert_allclose(first.scores, wide.scores, rtol=1e-5, atol=1e-5)
