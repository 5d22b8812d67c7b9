"""Full-softmax cross-entropy over a large item table without the (rows, items) logits in memory.

    loss = mean_m [ logsumexp_i (h_m · w_i) - h_m · w_{t_m} ]

`linear_cross_entropy(h, weight, targets)` equals `F.cross_entropy(h @ weight.T, targets)` (value and
gradients, up to float rounding), but goes through the rows in chunks: each chunk's logits are made,
turned into the chunk's loss and its gradients (softmax - onehot, times weight or h) and dropped, so the
(M, N) logits and their gradient are never stored or re-read. On a CPU that is the dense model's epoch:
bench/results/epoch-speed-*.json measures it. The gradients are computed in the forward pass (the loss
is the last operation of a training step) and scaled by the incoming gradient in backward.
"""

from __future__ import annotations

import torch

CHUNK_ROWS = 1024  # rows per chunk: a (1024, N) float32 block stays in cache for catalogues of a few thousand


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = h.new_zeros((), dtype=torch.float32)
        grad_h = torch.empty_like(h) if grads else None
        grad_w = torch.zeros_like(weight) if grads else None
        for start in range(0, len(h), chunk):
            rows, wanted = h[start:start + chunk], targets[start:start + chunk]
            logits = rows @ weight.T  # (C, N)
            picked = logits.gather(1, wanted[:, None]).squeeze(1)  # (C,)
            peak = logits.amax(dim=1, keepdim=True)  # (C, 1)
            probs = logits.sub_(peak).exp_()  # unnormalised softmax, in place of the logits: one pass each
            norm = probs.sum(dim=1, keepdim=True)  # (C, 1)
            total += (peak.squeeze(1) + norm.log().squeeze(1) - picked).sum()  # logsumexp - picked logit
            if grads:
                probs.div_(norm)
                probs[torch.arange(len(wanted), device=h.device), wanted] -= 1.0  # d(sum of losses)/d logits
                grad_h[start:start + chunk] = probs @ weight  # (C, D)
                grad_w.addmm_(probs.T, rows)  # (N, D)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.rows = len(h)
        return total / len(h)

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_loss / ctx.rows
        return grad_h * scale, grad_w * scale, None, None


def linear_cross_entropy(h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = CHUNK_ROWS) -> torch.Tensor:
    """Mean cross-entropy of softmax(h @ weight.T) against targets: h (M, D), weight (N, D), targets (M,)."""
    if h.ndim != 2 or weight.ndim != 2 or h.shape[1] != weight.shape[1] or targets.shape != (len(h),):
        raise ValueError(f"need h (M, D), weight (N, D), targets (M,); got {tuple(h.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(targets.shape)}")
    if len(h) == 0:
        raise ValueError("no rows to score")
    return _LinearCrossEntropy.apply(h, weight, targets, chunk)
