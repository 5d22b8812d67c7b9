import numpy as np
import pytest
import torch

from recsys.nets.decoding import ConstrainedBeamSearch, SidTrie
from recsys.nets.exact_scoring import (
    PruneStats,
    exact_topk,
    full_exact_topk,
    item_log_probs,
    prefix_links,
    pruned_exact_topk,
    users_per_chunk,
)
from recsys.nets.generative import GenerativeConfig, SidGenerativeModel

VOCAB = (5, 4, 3, 6)


def random_sids(rng, count: int, vocab=VOCAB) -> np.ndarray:
    """`count` distinct random SIDs of len(vocab) levels."""
    space = np.array(np.meshgrid(*[np.arange(v) for v in vocab], indexing="ij")).reshape(len(vocab), -1).T
    return space[rng.choice(len(space), count, replace=False)]


def lopsided_sids() -> np.ndarray:
    """A non-uniform trie: one first-level code with a single long chain, one with a bushy subtree,
    one with a single child that then fans out, and a lone item under another."""
    bushy = [[0, b, c, d] for b in range(4) for c in range(3) for d in range(2) if (b + c + d) % 3]
    chain = [[1, 2, 0, 5]]
    fan = [[2, 0, c, d] for c in range(3) for d in range(6)]
    lone = [[4, 3, 2, 1]]
    return np.array(bushy + chain + fan + lone)


def tiny_model(sids: np.ndarray, vocab=VOCAB, seed: int = 0, sharpen: float = 8.0) -> SidGenerativeModel:
    config = GenerativeConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=8, vocab_sizes=vocab,
                              num_items=len(sids))
    torch.manual_seed(seed)
    model = SidGenerativeModel(config, item_sids=sids).eval()
    with torch.no_grad():  # sharper than the initial head, so that levels matter and beams can miss
        for out in model.head.out:
            out.weight.mul_(sharpen)
    return model


@torch.no_grad()
def brute_force(model: SidGenerativeModel, state: torch.Tensor, sids: np.ndarray) -> torch.Tensor:
    """Teacher-force every item's SID on its own: (U, N) sum of its tokens' log-probabilities."""
    scores = torch.zeros(len(state), len(sids), dtype=torch.float64)
    for item, sid in enumerate(sids):
        s = state
        for level, code in enumerate(sid):
            logp = torch.log_softmax(model.level_logits(s, level).float(), dim=-1)
            scores[:, item] += logp[:, int(code)].double()
            if level < len(sid) - 1:
                s = model.advance(s, level, torch.full((len(state),), int(code)))
    return scores.float()


@pytest.fixture
def setup(rng):
    sids = random_sids(rng, 40)
    torch.manual_seed(1)
    return sids, tiny_model(sids), torch.randn(6, 16)


def test_prefix_links_describe_every_prefix(setup):
    sids, _, _ = setup
    trie = SidTrie(sids)
    links = prefix_links(trie)
    for level, (parent, code) in enumerate(links):
        mine = trie.prefix_of_item[level]
        assert torch.equal(code[mine], torch.as_tensor(sids[:, level]))
        above = trie.prefix_of_item[level - 1] if level else torch.zeros_like(mine)
        assert torch.equal(parent[mine], above)


def test_exact_scores_equal_brute_force(setup):
    sids, model, state = setup
    scores = item_log_probs(model, state, SidTrie(sids))
    assert scores.shape == (6, 40) and scores.dtype == torch.float32
    torch.testing.assert_close(scores, brute_force(model, state, sids), atol=1e-5, rtol=1e-5)
    # a proper distribution over the whole SID space, so the catalogue's share is at most 1
    assert (scores.exp().sum(1) <= 1 + 1e-5).all()


def test_exact_scores_on_a_lopsided_trie_and_under_any_chunking():
    sids = lopsided_sids()
    model = tiny_model(sids, seed=3)
    state = torch.randn(5, 16)
    trie = SidTrie(sids)
    expected = brute_force(model, state, sids)
    torch.testing.assert_close(item_log_probs(model, state, trie), expected, atol=1e-5, rtol=1e-5)
    # a tiny budget forces one user per chunk and head calls split by rows
    assert users_per_chunk(prefix_links(trie), list(VOCAB), 16, 32, budget_bytes=64) == 1
    torch.testing.assert_close(item_log_probs(model, state, trie, budget_bytes=64 * 4 * 3), expected,
                               atol=1e-5, rtol=1e-5)


def test_exact_topk_equals_sorted_brute_force(setup):
    sids, model, state = setup
    exclude = torch.zeros(6, 40, dtype=torch.bool)
    exclude[0, :20] = True
    exclude[3, ::3] = True
    result = exact_topk(model, state, SidTrie(sids), exclude, k=7)
    expected = brute_force(model, state, sids)
    for user in range(6):
        allowed = (~exclude[user]).nonzero().ravel()
        order = allowed[torch.argsort(expected[user, allowed], descending=True)][:7]
        assert result.items[user].tolist() == order.tolist()
        torch.testing.assert_close(result.scores[user], expected[user, order], atol=1e-5, rtol=1e-5)
        assert not exclude[user, result.items[user]].any()


def test_beam_search_never_beats_exact_and_matches_it_when_wide(setup):
    sids, model, state = setup
    trie = SidTrie(sids)
    exclude = torch.zeros(6, 40, dtype=torch.bool)
    exclude[:, 5] = True
    exclude[2, 10:30] = True
    exact = exact_topk(model, state, trie, exclude, k=5)
    scores = item_log_probs(model, state, trie)
    for beam in (5, 12, 25):
        result = ConstrainedBeamSearch(trie, beam_size=beam)(model, state, exclude, 5)
        torch.testing.assert_close(result.scores, scores.gather(1, result.items), atol=1e-5, rtol=1e-5)
        assert (exact.scores[:, -1] >= result.scores[:, -1] - 1e-6).all()
        assert (exact.scores >= result.scores - 1e-6).all()  # the i-th best is at least the beam's i-th
        assert not exclude.gather(1, result.items).any()
    wide = ConstrainedBeamSearch(trie, beam_size=len(sids))(model, state, exclude, 5)
    assert torch.equal(wide.items, exact.items)
    torch.testing.assert_close(wide.scores, exact.scores, atol=1e-5, rtol=1e-5)


def test_too_few_allowed_items_is_a_clear_error(setup):
    sids, model, state = setup
    exclude = torch.zeros(6, 40, dtype=torch.bool)
    exclude[4, 3:] = True  # three left
    assert sorted(exact_topk(model, state, SidTrie(sids), exclude, k=3).items[4].tolist()) == [0, 1, 2]
    with pytest.raises(ValueError, match="fewer allowed movies than k"):
        exact_topk(model, state, SidTrie(sids), exclude, k=4)
    with pytest.raises(ValueError, match="exclude must be"):
        exact_topk(model, state, SidTrie(sids), exclude[:, :10], k=2)


def test_ties_go_to_the_lower_item_index(setup):
    sids, model, state = setup
    trie = SidTrie(sids)
    with torch.no_grad():  # every head output constant: all items equally likely
        for out in model.head.out:
            out.weight.zero_()
            out.bias.zero_()
    result = exact_topk(model, state, trie, torch.zeros(6, 40, dtype=torch.bool), k=4)
    assert result.items.tolist() == [[0, 1, 2, 3]] * 6


def test_logits_wider_than_the_codes_in_use(setup):
    sids, _, state = setup
    wide = (VOCAB[0] + 2, VOCAB[1], VOCAB[2] + 1, VOCAB[3] + 3)  # codes no item uses
    model = tiny_model(sids, vocab=wide)
    torch.testing.assert_close(item_log_probs(model, state, SidTrie(sids)), brute_force(model, state, sids),
                               atol=1e-5, rtol=1e-5)


class RowCounter:
    """A SidDecoder that forwards to `model` and counts the rows passed to level_logits, per level."""

    def __init__(self, model: SidGenerativeModel) -> None:
        self.model, self.rows = model, [0] * len(model.config.vocab_sizes)
        self.config = model.config

    def level_logits(self, state: torch.Tensor, level: int) -> torch.Tensor:
        self.rows[level] += len(state)
        return self.model.level_logits(state, level)

    def advance(self, state: torch.Tensor, level: int, codes: torch.Tensor) -> torch.Tensor:
        return self.model.advance(state, level, codes)


def assert_same_topk(pruned, full) -> None:
    assert torch.equal(pruned.items, full.items)
    torch.testing.assert_close(pruned.scores, full.scores, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sharpen", [8.0, 1.0, 0.05])  # trained-like, untrained, near-uniform
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pruned_equals_full_exact_topk(seed, sharpen):
    rng = np.random.default_rng(seed)
    sids = random_sids(rng, 60)
    model = tiny_model(sids, seed=seed, sharpen=sharpen)
    trie, state = SidTrie(sids), torch.randn(7, 16, generator=torch.Generator().manual_seed(seed))
    exclude = torch.as_tensor(rng.random((7, 60)) < 0.3)
    exclude[0] = False
    exclude[1] = torch.arange(60) < 35  # 25 left
    for k in (1, 5, 20):
        for beam in (1, k, 3 * k):  # a weak bound (beam 1 -> width k) or a tight one, same result
            stats = PruneStats()
            pruned = pruned_exact_topk(model, state, trie, exclude, k, beam_size=beam, stats=stats)
            assert_same_topk(pruned, full_exact_topk(model, state, trie, exclude, k))
            assert not exclude.gather(1, pruned.items).any() and stats.fallback_users == 0


def test_pruned_equals_full_on_a_lopsided_trie_and_under_any_chunking():
    sids = lopsided_sids()
    model, trie, state = tiny_model(sids, seed=3), SidTrie(sids), torch.randn(5, 16)
    exclude = torch.zeros(5, len(sids), dtype=torch.bool)
    exclude[2, : len(sids) // 2] = True
    full = full_exact_topk(model, state, trie, exclude, 6)
    assert_same_topk(pruned_exact_topk(model, state, trie, exclude, 6), full)
    assert_same_topk(pruned_exact_topk(model, state, trie, exclude, 6, budget_bytes=64 * 4 * 3), full)
    assert_same_topk(exact_topk(model, state, trie, exclude, 6), full)  # the default is the pruned one
    assert_same_topk(exact_topk(model, state, trie, exclude, 6, prune=False), full)


def test_pruned_ties_go_to_the_lower_item_index(setup):
    sids, model, state = setup
    trie = SidTrie(sids)
    exclude = torch.zeros(6, 40, dtype=torch.bool)
    exclude[1, [0, 2, 5]] = True
    with torch.no_grad():  # last level constant: the items under one length-3 prefix all tie
        model.head.out[-1].weight.zero_()
        model.head.out[-1].bias.zero_()
    for k in (1, 5, 20):
        assert_same_topk(pruned_exact_topk(model, state, trie, exclude, k), full_exact_topk(model, state, trie,
                                                                                             exclude, k))
    with torch.no_grad():  # every level constant: all items tie
        for out in model.head.out:
            out.weight.zero_()
            out.bias.zero_()
    result = pruned_exact_topk(model, state, trie, exclude, k=4)
    assert result.items.tolist() == [[0, 1, 2, 3], [1, 3, 4, 6], *[[0, 1, 2, 3]] * 4]


def test_pruning_scores_far_fewer_head_rows_on_a_sharp_model():
    rng = np.random.default_rng(0)
    vocab = (16, 16, 16, 2)
    sids = random_sids(rng, 3000, vocab)
    model, trie, state = tiny_model(sids, vocab, seed=0), SidTrie(sids), torch.randn(16, 16)
    exclude = torch.as_tensor(rng.random((16, 3000)) < 0.1)
    full_rows = RowCounter(model)
    full = full_exact_topk(full_rows, state, trie, exclude, 20)
    pruned_rows, stats = RowCounter(model), PruneStats()
    assert_same_topk(pruned_exact_topk(pruned_rows, state, trie, exclude, 20, stats=stats), full)
    prefixes = [len(link.parent) for link in prefix_links(trie)]
    assert full_rows.rows == [16 * p for p in [1, *prefixes[:-1]]]  # once per distinct prefix and user
    # the counter sees the beam, the pruned pass and one probe row per level; the stats the first two
    assert sum(pruned_rows.rows) == stats.beam_rows + sum(stats.head_rows) + len(vocab)
    assert stats.users == 16 and stats.head_rows[0] == 16
    assert sum(pruned_rows.rows) < 0.25 * sum(full_rows.rows)  # 15% here
    assert stats.head_rows[-1] < 0.15 * full_rows.rows[-1]  # 9% at the last level


def test_an_uncertified_bound_falls_back_to_the_full_computation(setup):
    sids, model, state = setup
    trie, exclude = SidTrie(sids), torch.zeros(6, 40, dtype=torch.bool)
    stats = PruneStats()  # a negative slack puts the floor above every score: all pruned, none certified
    pruned = pruned_exact_topk(model, state, trie, exclude, 5, slack=-1e9, stats=stats)
    assert_same_topk(pruned, full_exact_topk(model, state, trie, exclude, 5))
    assert stats.fallback_users == 6 and stats.head_rows[1:] == [0, 0, 0]


def test_pruned_with_logits_wider_than_the_codes_in_use(setup):
    sids, _, state = setup
    wide = (VOCAB[0] + 2, VOCAB[1], VOCAB[2] + 1, VOCAB[3] + 3)
    model, trie = tiny_model(sids, vocab=wide), SidTrie(sids)
    exclude = torch.zeros(6, 40, dtype=torch.bool)
    exclude[:, ::4] = True
    assert_same_topk(pruned_exact_topk(model, state, trie, exclude, 5), full_exact_topk(model, state, trie,
                                                                                        exclude, 5))
    assert trie.root.shape == (trie.vocab_sizes[0],)  # the caller's trie is left as it was


def test_pruned_checks_its_inputs(setup):
    sids, model, state = setup
    exclude = torch.zeros(6, 40, dtype=torch.bool)
    exclude[4, 3:] = True
    with pytest.raises(ValueError, match="fewer allowed movies than k"):
        pruned_exact_topk(model, state, SidTrie(sids), exclude, k=4)
    with pytest.raises(ValueError, match="exclude must be"):
        pruned_exact_topk(model, state, SidTrie(sids), exclude[:, :10], k=2)
    empty = pruned_exact_topk(model, state[:0], SidTrie(sids), exclude[:0], k=2)
    assert empty.items.shape == (0, 2) and empty.scores.shape == (0, 2)


def test_film_head_scores_equal_brute_force_and_pruned_equals_full():
    """head_advance "film" rescales the state per code (not additive): exact, pruned and brute force agree."""
    rng = np.random.default_rng(5)
    sids = random_sids(rng, 60)
    config = GenerativeConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=8, vocab_sizes=VOCAB,
                              num_items=len(sids), head_advance="film")
    torch.manual_seed(5)
    model = SidGenerativeModel(config, item_sids=sids).eval()
    with torch.no_grad():
        for table in model.head.scale:
            table.weight.normal_(std=0.5)  # a trained-looking rescaling, not the initial identity
        for out in model.head.out:
            out.weight.mul_(8.0)
    state = torch.randn(7, 16)
    trie = SidTrie(sids)
    torch.testing.assert_close(item_log_probs(model, state, trie), brute_force(model, state, sids),
                               rtol=1e-4, atol=1e-4)
    exclude = torch.zeros(7, len(sids), dtype=torch.bool)
    full, pruned = full_exact_topk(model, state, trie, exclude, 10), pruned_exact_topk(model, state, trie, exclude, 10)
    assert torch.equal(full.items, pruned.items)


@pytest.mark.parametrize("bad", [{"head_advance": "multiply"}, {"head_hidden": -1}])
def test_generative_config_refuses_a_bad_head(bad):
    with pytest.raises(ValueError, match="GenerativeConfig"):
        GenerativeConfig(vocab_sizes=VOCAB, num_items=10, **bad)
