"""The networks' validation diagnostics: where the held-out movie's negative log-likelihood sits."""

import numpy as np
import torch
import torch.nn.functional as F
from test_exact_scoring import lopsided_sids, tiny_model

from recsys.nets.dense import DenseConfig, DenseSequentialModel
from recsys.nets.exact_scoring import item_log_probs


def histories(rng, rows: int, num_items: int, length: int = 8) -> torch.Tensor:
    items = torch.as_tensor(rng.integers(0, num_items, (rows, length)))
    items[0, :5] = -1  # one left-padded history
    return items


def test_sid_diagnostics_sum_to_the_exact_item_log_probability():
    sids = lopsided_sids()
    model = tiny_model(sids)
    rng = np.random.default_rng(0)
    items, targets = histories(rng, 12, len(sids)), torch.as_tensor(rng.integers(0, len(sids), 12))
    figures = model.diagnostics(items, targets)
    levels = sids.shape[1]
    assert sorted(figures) == sorted(["nll", *(f"{kind}/level{k}" for kind in ("nll", "acc", "greedy")
                                               for k in range(1, levels + 1))])
    # An independent path: the trie's exact log p(item) of every movie, read at the target
    exact = item_log_probs(model, model.hidden(items)[:, -1], model.trie())
    torch.testing.assert_close(figures["nll"], -exact[torch.arange(12), targets], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(figures["nll"], sum(figures[f"nll/level{k}"] for k in range(1, levels + 1)))
    # greedy decoding's first code is the teacher-forced argmax; a longer prefix can only be right less often
    torch.testing.assert_close(figures["greedy/level1"], figures["acc/level1"])
    for k in range(2, levels + 1):
        assert (figures[f"greedy/level{k}"] <= figures[f"greedy/level{k - 1}"]).all()
        assert (figures[f"greedy/level{k}"] <= figures[f"acc/level{k}"] + figures[f"greedy/level{k - 1}"]).all()


def test_sid_diagnostics_count_a_right_greedy_prefix():
    """A history whose greedy codes are forced to the target's: every level right."""
    sids = lopsided_sids()
    model = tiny_model(sids)
    items = torch.as_tensor([[0, 1, 2, 3, 4, 5, 6, 7]])
    state = model.hidden(items)[:, -1]
    greedy = []
    with torch.no_grad():
        for level in range(sids.shape[1]):
            code = model.level_logits(state, level).argmax(dim=-1)
            greedy.append(int(code))
            if level < sids.shape[1] - 1:
                state = model.advance(state, level, code)
    model.item_sids[0] = torch.as_tensor(greedy)  # make item 0's SID the greedy path
    figures = model.diagnostics(items, torch.as_tensor([0]))
    assert all(float(figures[f"greedy/level{k}"][0]) == 1.0 for k in range(1, sids.shape[1] + 1))


def test_dense_diagnostics_is_the_full_softmax_cross_entropy():
    model = DenseSequentialModel(DenseConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=8,
                                             num_items=30)).eval()
    rng = np.random.default_rng(1)
    items, targets = histories(rng, 6, 30), torch.as_tensor(rng.integers(0, 30, 6))
    logits = model.hidden(items)[:, -1] @ model.item.weight.T
    expected = F.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(model.diagnostics(items, targets)["nll"], expected.detach())
