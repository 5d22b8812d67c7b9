"""sid-hybrid: config checks, the joint loss, scores equal to the two factors, valid recommendations,
and untrained (cold) movies keeping a zero id vector."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recsys.nets.exact_scoring import item_log_probs
from recsys.nets.hybrid import HybridConfig, SidHybridModel

VOCAB = (4, 4, 3)
N_ITEMS = 30


def tiny_hybrid(candidates: int = 100, dense_weight: float = 1.0, seed: int = 0) -> SidHybridModel:
    rng = np.random.default_rng(seed)
    space = np.array(np.meshgrid(*[np.arange(v) for v in VOCAB], indexing="ij")).reshape(len(VOCAB), -1).T
    sids = space[rng.choice(len(space), N_ITEMS, replace=False)]
    config = HybridConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=6, vocab_sizes=VOCAB,
                          num_items=N_ITEMS, candidates=candidates, dense_weight=dense_weight)
    torch.manual_seed(seed)
    model = SidHybridModel(config, item_sids=sids)
    with torch.no_grad():  # a trained-looking id table, so the dense side is not just the SID tokens
        model.item.weight.normal_()
    return model.eval()


def histories(count: int = 5) -> torch.Tensor:
    return torch.randint(0, N_ITEMS, (count, 6), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("bad", [{"dense_weight": -1.0}, {"candidates": 0}, {"item_embedding": False}])
def test_config_refuses_bad_settings(bad):
    with pytest.raises(ValueError, match="HybridConfig"):
        HybridConfig(vocab_sizes=VOCAB, num_items=N_ITEMS, **bad)


def test_loss_is_the_sid_nll_plus_the_dense_nll():
    model = tiny_hybrid()
    inputs, targets = histories(), torch.randint(0, N_ITEMS, (5, 6), generator=torch.Generator().manual_seed(2))
    state = model.hidden(inputs)  # (B, L, D), every position real
    flat, wanted = state.reshape(-1, 16), targets.reshape(-1)
    sid = -model.sid_log_probs(flat, wanted[:, None]).mean()
    dense = F.cross_entropy(model.dense_logits(flat), wanted)
    torch.testing.assert_close(model.loss(inputs, targets), sid + dense, rtol=1e-5, atol=1e-5)


def test_sid_log_probs_equal_the_exact_scorer():
    model = tiny_hybrid()
    state = model.hidden(histories())[:, -1]
    every = torch.arange(N_ITEMS).expand(5, N_ITEMS)
    torch.testing.assert_close(model.sid_log_probs(state, every), item_log_probs(model, state, model.trie()),
                               rtol=1e-5, atol=1e-5)


def test_with_every_movie_a_candidate_the_ranking_is_the_combined_scores_top_k():
    model = tiny_hybrid(candidates=N_ITEMS, dense_weight=0.5)
    inputs = histories()
    exclude = torch.zeros(5, N_ITEMS, dtype=torch.bool).scatter_(1, inputs, True)
    state = model.hidden(inputs)[:, -1]
    combined = item_log_probs(model, state, model.trie()) + 0.5 * F.log_softmax(model.dense_logits(state), -1)
    expected = combined.masked_fill(exclude, float("-inf")).topk(7, dim=1)
    result = model.recommend(inputs, exclude, 7)
    torch.testing.assert_close(result.scores, expected.values, rtol=1e-5, atol=1e-5)
    assert torch.equal(result.items, expected.indices)


def test_few_candidates_still_give_k_distinct_allowed_movies():
    model = tiny_hybrid(candidates=3)
    inputs = histories()
    exclude = torch.zeros(5, N_ITEMS, dtype=torch.bool).scatter_(1, inputs, True)
    result = model.recommend(inputs, exclude, 5)  # C is raised to k: both sides give >= 5
    for items, scores, banned in zip(result.items, result.scores, exclude, strict=True):
        assert len(set(items.tolist())) == 5 and not banned[items].any()
        assert torch.all(scores[1:] <= scores[:-1]) and torch.isfinite(scores).all()


def test_an_untrained_movie_keeps_a_zero_id_vector():
    """A movie outside `existing` gets no gradient: its dense vector stays its SID tokens' sum."""
    model = SidHybridModel(tiny_hybrid().config, item_sids=tiny_hybrid().item_sids.numpy()).train()
    existing = torch.ones(N_ITEMS, dtype=torch.bool)
    existing[[3, 7]] = False
    inputs = torch.tensor([[0, 1, 2, 4, 5, 6], [8, 9, 10, 11, 12, 13]])
    targets = torch.tensor([[1, 2, 4, 5, 6, 8], [9, 10, 11, 12, 13, 14]])
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        optimiser.zero_grad()
        model.loss(inputs, targets, existing=existing).backward()
        optimiser.step()
    assert not model.item.weight[[3, 7]].any() and model.item.weight[[1, 2]].any()
    tokens = sum(table(model.item_sids[3, k]) for k, table in enumerate(model.token))
    torch.testing.assert_close(model.item_vectors()[3], tokens)
