"""The SID head's variants: FiLM advance, attention to the history's last K states, and per-child output
vectors with a softmax over each prefix's real children (head_nodes)."""

import numpy as np
import pytest
import torch

from recsys.nets.decoding import SidTrie
from recsys.nets.exact_scoring import full_exact_topk, item_log_probs, pruned_exact_topk
from recsys.nets.generative import ChildTables, GenerativeConfig, SidGenerativeModel

VOCAB = (5, 4, 3)
N_ITEMS = 40


def model_with(**head) -> SidGenerativeModel:
    rng = np.random.default_rng(3)
    space = np.array(np.meshgrid(*[np.arange(v) for v in VOCAB], indexing="ij")).reshape(len(VOCAB), -1).T
    sids = space[rng.choice(len(space), N_ITEMS, replace=False)]
    config = GenerativeConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=6, vocab_sizes=VOCAB,
                              num_items=N_ITEMS, **head)
    torch.manual_seed(3)
    model = SidGenerativeModel(config, item_sids=sids).eval()
    with torch.no_grad():
        for out in model.head.out:
            out.weight.mul_(8.0)  # sharper than at initialisation, so levels and pruning matter
        for table in model.head.nodes or []:
            table.weight.normal_(0.0, 2.0)  # a trained head's per-child vectors are not zero
    return model


def histories() -> torch.Tensor:
    items = torch.randint(0, N_ITEMS, (7, 6), generator=torch.Generator().manual_seed(4))
    items[:3, :2] = -1  # left padding
    return items


def brute_force(model: SidGenerativeModel, state: torch.Tensor) -> torch.Tensor:
    """(U, N): every item's SID teacher-forced on its own."""
    scores = torch.zeros(len(state), N_ITEMS)
    for item, sid in enumerate(model.item_sids):
        s = state
        for level, code in enumerate(sid.tolist()):
            scores[:, item] += torch.log_softmax(model.level_logits(s, level), -1)[:, code]
            if level < len(sid) - 1:
                s = model.advance(s, level, torch.full((len(state),), code))
    return scores


def test_the_window_holds_the_newest_states_keys_and_values_with_padding_flagged():
    model = model_with(head_attend=3)
    items = histories()
    h = model.hidden(items)  # (B, L, D)
    rows = model.head_states(h, items)  # (B, L, D + 2 * 3 * D + 3)
    assert rows.shape == (7, 6, 16 + 2 * 48 + 3)
    torch.testing.assert_close(rows[:, :, :16], h)
    head = model.head
    newest = h[4, 3:6]  # user 4's position 5: the three newest states, oldest first, then itself
    torch.testing.assert_close(rows[4, 5, 16:64], head.keys(head.memory_norm(newest)).flatten())
    torch.testing.assert_close(rows[4, 5, 64:112], head.values(head.memory_norm(newest)).flatten())
    assert rows[4, 5, 112:].tolist() == [1.0, 1.0, 1.0]
    tail = rows[0, 2]  # user 0: positions 0-1 are padding
    assert tail[112:].tolist() == [0.0, 0.0, 1.0] and not tail[16:48].any() and not tail[64:96].any()


def test_a_later_item_never_reaches_an_earlier_positions_head_state():
    model = model_with(head_attend=3)
    items = histories()
    changed = items.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % N_ITEMS
    before, after = (model.head_states(model.hidden(x), x) for x in (items, changed))
    torch.testing.assert_close(before[:, :4], after[:, :4])


@pytest.mark.parametrize("head", [{"head_attend": 3}, {"head_attend": 2, "head_advance": "film"},
                                  {"head_nodes": True}, {"head_nodes": True, "head_attend": 2},
                                  {"head_softmax": "children"}])
def test_exact_pruned_and_brute_force_agree_for_each_head(head):
    model = model_with(**head)
    state = model.decoder_state(histories())  # (U, D')
    trie = SidTrie(model.item_sids.numpy())
    with torch.no_grad():
        torch.testing.assert_close(item_log_probs(model, state, trie), brute_force(model, state),
                                   rtol=1e-4, atol=1e-4)
    exclude = torch.zeros(len(state), N_ITEMS, dtype=torch.bool)
    exclude[:, :5] = True
    full, pruned = full_exact_topk(model, state, trie, exclude, 10), pruned_exact_topk(model, state, trie, exclude, 10)
    assert torch.equal(full.items, pruned.items)


def train_briefly(model: SidGenerativeModel) -> list[float]:
    """20 Adam steps on next-item targets of `histories()`; the losses."""
    items = histories()
    targets = torch.roll(items, -1, dims=1).clamp(min=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        optimiser.zero_grad()
        loss = model.loss(items, targets)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return losses


def test_an_attending_head_trains():
    model = model_with(head_attend=3).train()
    losses = train_briefly(model)
    assert losses[-1] < losses[0] and all(p.grad is not None for p in model.head.parameters())


def test_head_attend_beyond_the_history_is_refused():
    with pytest.raises(ValueError, match="head_attend"):
        GenerativeConfig(vocab_sizes=VOCAB, num_items=N_ITEMS, max_len=6, head_attend=7)


def test_child_tables_list_exactly_each_prefixs_real_children_and_a_movie_below_each():
    model = model_with(head_nodes=True)
    sids = model.item_sids.numpy()
    tables = ChildTables.from_trie(SidTrie(sids), VOCAB)
    trie = SidTrie(sids)
    prefixes = [[()]] + [sorted({tuple(s[:k]) for s in sids}) for k in range(1, len(VOCAB))]
    for level, parents in enumerate(prefixes):
        for parent in parents:
            node = 0 if level == 0 else int(trie.prefix_of_item[level - 1][
                next(i for i, s in enumerate(sids) if tuple(s[:level]) == parent)])
            expected = {int(s[level]) for s in sids if tuple(s[:level]) == parent}
            codes = [int(c) for c in tables.codes[level][node] if c >= 0]
            assert sorted(codes) == sorted(expected)
            for code, row in zip(tables.codes[level][node].tolist(), tables.rows[level][node].tolist(),
                                 strict=True):
                if code >= 0:
                    assert tuple(sids[row][:level + 1]) == (*parent, code)


def test_with_head_nodes_the_catalogues_probabilities_sum_to_one():
    """The softmax runs over real children only, so no mass is lost to codes no movie has."""
    for head, expect_one in (({"head_nodes": True}, True), ({"head_softmax": "children"}, True), ({}, False)):
        model = model_with(**head)
        state = model.decoder_state(histories())
        with torch.no_grad():
            total = item_log_probs(model, state, SidTrie(model.item_sids.numpy())).exp().sum(1)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-5) == expect_one
    with torch.no_grad():  # scoring any head with children_only renormalises it the same way
        total = item_log_probs(model, state, SidTrie(model.item_sids.numpy()), children_only=True).exp().sum(1)
    torch.testing.assert_close(total, torch.ones_like(total))


def test_a_childs_own_vector_moves_only_its_siblings_probabilities():
    model = model_with(head_nodes=True)
    state = model.decoder_state(histories())
    trie = SidTrie(model.item_sids.numpy())
    sids = model.item_sids
    share = (sids[:, None, :-1] == sids[None, :, :-1]).all(-1)  # (N, N): same parent prefix
    item = int(torch.nonzero(share.sum(1) >= 2)[0])  # a movie with a sibling: its share can move
    siblings = share[item]
    with torch.no_grad():
        before = item_log_probs(model, state, trie)
        model.head.nodes[-1].weight[item].add_(5.0)  # at the last level a node's movie is the item itself
        after = item_log_probs(model, state, trie)
    changed = ~torch.isclose(before, after, atol=1e-6).all(0)
    assert changed[item] and not changed[~siblings].any()


def test_a_head_with_nodes_trains_and_loads_back(tmp_path):
    model = model_with(head_nodes=True, head_attend=2).train()
    items = histories()
    losses = train_briefly(model)
    assert losses[-1] < losses[0] and all(t.weight.grad.abs().sum() > 0 for t in model.head.nodes)
    model.eval().save_pretrained(tmp_path)
    loaded = SidGenerativeModel.from_pretrained(tmp_path).eval()
    trie = SidTrie(model.item_sids.numpy())
    with torch.no_grad():
        torch.testing.assert_close(item_log_probs(loaded, loaded.decoder_state(items), trie),
                                   item_log_probs(model, model.decoder_state(items), trie))


def test_head_nodes_must_be_a_boolean_and_head_softmax_a_known_one():
    with pytest.raises(ValueError, match="head_nodes"):
        GenerativeConfig(vocab_sizes=VOCAB, num_items=N_ITEMS, head_nodes="yes")
    with pytest.raises(ValueError, match="head_softmax"):
        GenerativeConfig(vocab_sizes=VOCAB, num_items=N_ITEMS, head_softmax="tree")


def test_the_children_softmax_alone_equals_renormalising_the_codebook_softmax():
    """head_softmax=children with no node vectors is the codebook head renormalised over real children."""
    plain, children = model_with(), model_with(head_softmax="children")
    children.load_state_dict(plain.state_dict())
    items = histories()
    trie = SidTrie(plain.item_sids.numpy())
    with torch.no_grad():
        torch.testing.assert_close(item_log_probs(children, children.decoder_state(items), trie),
                                   item_log_probs(plain, plain.decoder_state(items), trie, children_only=True))


def test_a_movie_absent_from_training_is_never_pushed_down_by_its_siblings_targets():
    """Cold start: with `existing`, a child that leads to no training movie leaves the softmax, so its own
    vector gets no gradient; without it, the vector is a competitor of its sibling's target."""
    model = model_with(head_nodes=True).train()
    sids = model.item_sids
    share = (sids[:, None, :-1] == sids[None, :, :-1]).all(-1) & ~torch.eye(N_ITEMS, dtype=torch.bool)
    cold, sibling = (int(i) for i in torch.nonzero(share)[0])
    items = histories().clamp(min=0)
    items[items == cold] = sibling
    targets = torch.full_like(items, sibling)
    existing = torch.ones(N_ITEMS, dtype=torch.bool)
    existing[cold] = False
    grads = []
    for given in (None, existing):
        model.zero_grad()
        model.loss(items, targets, existing=given).backward()
        grads.append(model.head.nodes[-1].weight.grad[cold].abs().sum())
    assert grads[0] > 0 and grads[1] == 0
