import numpy as np
import pytest

from rqsid.quality import (
    codebook_usage,
    coherence_ratio,
    collisions,
    reconstruction_quality,
    within_group_jaccard,
)


def test_codebook_usage_by_hand():
    # counts 2, 2, 0, 0 over K=4: half used, perplexity exp(ln 2) = 2.
    usage = codebook_usage(np.array([0, 1, 0, 1]), 4)
    assert usage["codes_used"] == 2 and usage["utilisation"] == 0.5
    assert usage["perplexity"] == pytest.approx(2.0)
    assert codebook_usage(np.arange(8), 8)["perplexity"] == pytest.approx(8.0)


def test_collisions_by_hand():
    codes = np.array([[1, 2], [1, 2], [1, 3], [4, 4], [1, 2]])
    result = collisions(codes)
    assert result == {"collision_rate": 3 / 5, "largest_collision_group": 3, "distinct_codes": 3}


def test_reconstruction_by_hand():
    x = np.array([[1.0, 0.0], [0.0, 2.0]])
    y = np.array([[1.0, 1.0], [0.0, 2.0]])
    result = reconstruction_quality(x, y)
    assert result["reconstruction_cosine"] == pytest.approx((1 / np.sqrt(2) + 1) / 2)
    assert result["reconstruction_mse"] == pytest.approx(1 / 4)


def test_within_group_jaccard_by_hand():
    # group 0: {a,b} vs {a} -> 1/2; group 1: {c} vs {c} -> 1, {c} vs {d} -> 0, {c} vs {d} -> 0.
    from rqsid.quality import multi_hot

    matrix = multi_hot([["a", "b"], ["a"], ["c"], ["c"], ["d"]])
    groups = np.array([0, 0, 1, 1, 1])
    assert within_group_jaccard(matrix, groups) == pytest.approx((0.5 + 1 + 0 + 0) / 4)


def test_coherence_ratio_is_high_for_label_aligned_codes_and_near_one_for_random(rng):
    labels = [["x"]] * 50 + [["y"]] * 50 + [["z"]] * 50
    aligned = np.repeat([0, 1, 2], 50)[:, None]
    assert coherence_ratio(aligned, labels, levels=1, rng=rng)["ratio"] == pytest.approx(3.0, rel=0.05)
    shuffled = rng.permutation(aligned)
    assert coherence_ratio(shuffled, labels, levels=1, rng=rng)["ratio"] == pytest.approx(1.0, abs=0.2)
