"""Property-based tests (hypothesis): SIDs are always unique and of the configured length; metrics stay in
bounds and never fall as K grows."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from recsys.evaluation.metrics import ndcg_at_k, ranking_metrics, recall_at_k
from rqsid.assign import append_disambiguation_token

codes = st.integers(1, 4).flatmap(
    lambda levels: arrays(np.int64, st.tuples(st.integers(1, 200), st.just(levels)), elements=st.integers(0, 3)))


@given(learned=codes, seed=st.integers(0, 2**32 - 1))
@settings(max_examples=200, deadline=None)
def test_appended_token_makes_every_sid_unique_and_one_longer(learned, seed):
    key = np.random.default_rng(seed).random(len(learned))
    sids = append_disambiguation_token(learned, key)
    assert sids.shape == (len(learned), learned.shape[1] + 1)
    assert len(np.unique(sids, axis=0)) == len(learned)
    np.testing.assert_array_equal(sids[:, :-1], learned)  # the learned codes are kept as they are
    # the token counts 0, 1, 2, ... inside each group of equal learned codes
    _, inverse, counts = np.unique(learned, axis=0, return_inverse=True, return_counts=True)
    for group, size in enumerate(counts):
        assert sorted(sids[inverse.ravel() == group, -1]) == list(range(size))


@st.composite
def rankings(draw):
    users, items = draw(st.integers(1, 30)), draw(st.integers(20, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    ranked = np.stack([rng.permutation(items)[:20] for _ in range(users)])
    return ranked, rng.integers(0, items, users)


@given(rankings())
@settings(max_examples=200, deadline=None)
def test_metrics_are_bounded_and_monotonic_in_k(ranking):
    ranked, targets = ranking
    previous = {"recall": np.zeros(len(targets)), "ndcg": np.zeros(len(targets))}
    for k in range(1, 21):
        recall, ndcg = recall_at_k(ranked, targets, k), ndcg_at_k(ranked, targets, k)
        assert ((0 <= ndcg) & (ndcg <= recall) & (recall <= 1)).all()
        assert (recall >= previous["recall"]).all() and (ndcg >= previous["ndcg"]).all()
        previous = {"recall": recall, "ndcg": ndcg}
    means = ranking_metrics(ranked, targets, ks=(5, 10, 20))
    assert means["recall@5"] <= means["recall@10"] <= means["recall@20"]
    assert means["ndcg@5"] <= means["ndcg@10"] <= means["ndcg@20"]
