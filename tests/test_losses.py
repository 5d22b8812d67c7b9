"""The pieces that make training faster equal what they replace: the chunked full-softmax loss (value and
both gradients) and the uniform-draw dropout (distribution, scaling, eval pass-through)."""

import pytest
import torch
import torch.nn.functional as F

from recsys.nets.losses import linear_cross_entropy


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_equals_cross_entropy_of_the_full_logits(chunk):
    torch.manual_seed(0)
    h = torch.randn(50, 8, requires_grad=True)
    weight = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(0, 30, (50,))
    reference = F.cross_entropy(h @ weight.T, targets)
    ref_h, ref_w = torch.autograd.grad(reference * 3.0, (h, weight))
    loss = linear_cross_entropy(h, weight, targets, chunk=chunk)
    got_h, got_w = torch.autograd.grad(loss * 3.0, (h, weight))  # an upstream factor reaches both gradients
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(got_h, ref_h)
    torch.testing.assert_close(got_w, ref_w)


def test_shared_weight_accumulates_both_gradients():
    """The dense model uses one table for inputs and outputs: both paths must add up."""
    torch.manual_seed(1)
    table = torch.randn(20, 4, requires_grad=True)
    items, targets = torch.randint(0, 20, (12,)), torch.randint(0, 20, (12,))
    reference = torch.autograd.grad(F.cross_entropy(torch.tanh(table[items]) @ table.T, targets), table)[0]
    got = torch.autograd.grad(linear_cross_entropy(torch.tanh(table[items]), table, targets, chunk=5), table)[0]
    torch.testing.assert_close(got, reference)


def test_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match="need h"):
        linear_cross_entropy(torch.zeros(3, 4), torch.zeros(5, 2), torch.zeros(3, dtype=torch.long))


def test_dropout_keeps_nn_dropouts_distribution():
    from recsys.nets.backbone import Dropout

    torch.manual_seed(0)
    x = torch.ones(200_000, requires_grad=True)
    layer = Dropout(0.2)
    y = layer(x)
    zero = (y == 0).float().mean().item()
    assert abs(zero - 0.2) < 0.005 and torch.allclose(y[y != 0], torch.tensor(1 / 0.8))
    assert abs(y.mean().item() - 1.0) < 0.01  # expectation preserved
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # gradient flows through survivors only, scaled alike
    assert layer.eval()(x) is x
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)
