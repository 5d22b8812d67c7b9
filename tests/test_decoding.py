import itertools

import numpy as np
import pytest
import torch

from recsys.nets.backbone import BackboneConfig, SequenceBackbone, attention_mask
from recsys.nets.decoding import ConstrainedBeamSearch, SidTrie
from recsys.nets.generative import GenerativeConfig, SidGenerativeModel

SIDS = np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [1, 2, 0], [2, 1, 3]])


def tiny_generative(sids=SIDS, **changes) -> SidGenerativeModel:
    config = GenerativeConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=6,
                              vocab_sizes=tuple(int(v) + 1 for v in sids.max(0)), num_items=len(sids), **changes)
    torch.manual_seed(0)
    return SidGenerativeModel(config, item_sids=sids).eval()


HEADS = [pytest.param({"head_nodes": False}, id="codebook"), pytest.param({"head_nodes": True}, id="nodes")]


def head_rows(model: SidGenerativeModel, users: int) -> torch.Tensor:
    """(users, D') the head's input rows for random histories: what the model decodes from."""
    items = torch.randint(0, model.config.num_items, (users, 6), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        for table in model.head.nodes or []:
            table.weight.normal_(0.0, 1.0)  # a trained head's per-child vectors are not zero
        return model.decoder_state(items)


def exhaustive_scores(model: SidGenerativeModel, state: torch.Tensor, sids: np.ndarray) -> torch.Tensor:
    """Log-probability of every item's full SID, token by token: what beam search approximates."""
    scores = torch.zeros(len(state), len(sids))
    for item, sid in enumerate(sids):
        s = state
        for level, code in enumerate(sid):
            scores[:, item] += torch.log_softmax(model.level_logits(s, level), -1)[:, code]
            if level < len(sid) - 1:  # nothing follows the last token
                s = model.advance(s, level, torch.full((len(state),), int(code)))
    return scores


def test_trie_tables():
    trie = SidTrie(SIDS)
    assert trie.depth == 3 and trie.vocab_sizes == [3, 3, 4]
    assert (trie.root >= 0).tolist() == [True, True, True]
    level1 = trie.children[0][trie.root[0]]  # children of prefix (0,)
    assert (level1 >= 0).tolist() == [True, True, False]
    with pytest.raises(ValueError, match="unique"):
        SidTrie(np.array([[0, 1], [0, 1]]))


@pytest.mark.parametrize("head", HEADS)
def test_beam_search_equals_exhaustive_ranking_when_beam_is_wide(head):
    model = tiny_generative(**head)
    state = head_rows(model, 4)
    exclude = torch.zeros(4, len(SIDS), dtype=torch.bool)
    exclude[1, [0, 3]] = True
    result = ConstrainedBeamSearch(SidTrie(SIDS), beam_size=len(SIDS))(model, state, exclude, k=3)
    expected = exhaustive_scores(model, state, SIDS).masked_fill(exclude, float("-inf")).topk(3, dim=1)
    assert torch.equal(result.items, expected.indices)
    torch.testing.assert_close(result.scores, expected.values)


@pytest.mark.parametrize("head", HEADS)
def test_every_result_is_a_real_unseen_item_even_with_narrow_beams(rng, head):
    sids = np.array(list(itertools.product(range(4), range(3), range(2))))  # 24 items
    model = tiny_generative(sids, **head)
    exclude = torch.as_tensor(rng.random((32, len(sids))) < 0.6)
    exclude[:, :4] = True  # a whole first-level prefix is gone for everyone
    exclude[0] = True
    exclude[0, [5, 17, 20]] = False  # user 0 has exactly three items left
    result = ConstrainedBeamSearch(SidTrie(sids), beam_size=3)(model, head_rows(model, 32), exclude, k=3)
    assert result.items.shape == (32, 3)
    for user in range(32):
        items = result.items[user].tolist()
        assert len(set(items)) == 3 and not exclude[user, items].any()
    assert sorted(result.items[0].tolist()) == [5, 17, 20]


def test_too_few_allowed_items_is_a_clear_error():
    exclude = torch.ones(1, len(SIDS), dtype=torch.bool)
    exclude[0, 0] = False
    model = tiny_generative()
    with pytest.raises(ValueError, match="fewer allowed movies than k"):
        ConstrainedBeamSearch(SidTrie(SIDS), 4)(model, head_rows(model, 1), exclude, k=2)


def test_backbone_is_causal_and_ignores_padding():
    torch.manual_seed(0)
    backbone = SequenceBackbone(BackboneConfig(d_model=16, n_layers=2, n_heads=2, dropout=0.0, max_len=6)).eval()
    x = torch.randn(1, 6, 16)
    padding = torch.tensor([[True, True, False, False, False, False]])
    out = backbone(x, padding)
    changed_future = x.clone()
    changed_future[0, 5] += 1.0
    changed_padding = x.clone()
    changed_padding[0, :2] = 5.0
    torch.testing.assert_close(backbone(changed_future, padding)[0, :5], out[0, :5])
    torch.testing.assert_close(backbone(changed_padding, padding)[0, 2:], out[0, 2:])
    assert not torch.isnan(backbone(x, torch.ones(1, 6, dtype=torch.bool))).any()
    assert attention_mask(padding).shape == (1, 1, 6, 6)


@pytest.mark.slow
def test_generative_model_learns_a_repeating_pattern_and_round_trips(tmp_path):
    model = tiny_generative().train()
    sequence = torch.tensor([[0, 3, 5, 0, 3, 5, 0]])  # after 0 comes 3, after 3 comes 5, after 5 comes 0
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        loss = model.loss(sequence[:, :-1], sequence[:, 1:])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    history = torch.tensor([[-1, -1, -1, 0, 3, 5]])
    top = model.recommend(history, torch.zeros(1, len(SIDS), dtype=torch.bool), k=1).items
    assert top.tolist() == [[0]]
    model.save_pretrained(tmp_path)
    loaded = SidGenerativeModel.from_pretrained(str(tmp_path)).eval()
    assert torch.equal(loaded.item_sids, model.item_sids)
    assert torch.equal(loaded.recommend(history, torch.zeros(1, 6, dtype=torch.bool), k=3).items,
                       model.recommend(history, torch.zeros(1, 6, dtype=torch.bool), k=3).items)


def test_generative_config_validates_itself():
    with pytest.raises(ValueError, match="vocab_sizes"):
        GenerativeConfig(vocab_sizes=(), num_items=3)
    with pytest.raises(ValueError, match="divisible"):
        GenerativeConfig(d_model=10, n_heads=3, vocab_sizes=(2,), num_items=3)
    with pytest.raises(ValueError, match="item_sids must be"):
        SidGenerativeModel(GenerativeConfig(vocab_sizes=(2, 2), num_items=3), item_sids=np.zeros((3, 3)))
