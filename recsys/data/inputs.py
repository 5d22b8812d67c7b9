"""Model inputs built from item histories, without Lightning: inference paths import only this.

Histories are left-padded to a fixed length (PAD = -1), so the last column is always the most recent item.
"""

from __future__ import annotations

import numpy as np
import torch

PAD = -1  # item index used for padding (left side)


def left_pad(sequences: list[np.ndarray], length: int) -> np.ndarray:
    """Last `length` items of each sequence, right-aligned in a (B, length) int64 array padded with PAD."""
    out = np.full((len(sequences), length), PAD, dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-length:], dtype=np.int64)
        if len(tail):
            out[row, length - len(tail):] = tail
    return out


def exclusion_mask(histories: list[np.ndarray], num_items: int) -> torch.Tensor:
    """(B, N) True for the items a user has already rated; those are never recommended."""
    mask = torch.zeros(len(histories), num_items, dtype=torch.bool)
    for row, items in enumerate(histories):
        mask[row, torch.from_numpy(np.array(items, dtype=np.int64))] = True
    return mask
