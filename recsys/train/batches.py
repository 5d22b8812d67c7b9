"""Batches for the sequence models: whole-sequence training windows and evaluation histories.

Training uses whole sequences with causal masking (`sampling="windows"`, the default): a window of L + 1
items gives L (input, next item) pairs in one pass, instead of one encoder pass per prefix. Each user's
training sequence is cut into windows of L + 1 items from its end with stride L, so every training
target is predicted exactly once per epoch, and the most recent items always sit in a full-length window.

The alternative, `sampling="prefixes"`, draws one random prefix per user per epoch and trains on its next
item only (one target per encoder pass). bench/sampling.py measures which gives the better NDCG per
CPU-minute.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from recsys.data.inputs import PAD, exclusion_mask, left_pad  # noqa: F401  (re-exported)
from recsys.data.splits import SequenceSplit
from recsys.train.config import SAMPLING


def window_ends(length: int, max_len: int) -> range:
    """End positions of the windows of a sequence of `length` items (none for fewer than 2 items)."""
    return range(length, 1, -max_len)


def training_windows(sequences: list[np.ndarray], max_len: int) -> np.ndarray:
    """(W, max_len + 1) windows, cut from each sequence's end with stride max_len; sequences of < 2 items
    give nothing (no target)."""
    windows = [seq[max(0, end - max_len - 1):end] for seq in sequences for end in window_ends(len(seq), max_len)]
    if not windows:
        raise ValueError("no training sequence has two or more items")
    return left_pad(windows, max_len + 1)


def window_users(sequences: list[np.ndarray], users: np.ndarray, max_len: int) -> np.ndarray:
    """(W,) the user of each of `training_windows(sequences, max_len)`."""
    counts = [len(window_ends(len(seq), max_len)) for seq in sequences]
    return np.repeat(np.asarray(users, dtype=np.int64), counts)


def stage_histories(split: SequenceSplit, rows: np.ndarray, stage: str) -> list[np.ndarray]:
    """The model inputs of evaluated users `rows` at `stage` ("valid" or "test")."""
    if stage not in ("valid", "test"):
        raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
    fetch = split.valid_inputs if stage == "valid" else split.test_inputs
    return [fetch(int(u)) for u in rows]


class SampledPrefixes(Dataset):
    """One random prefix of each training sequence per access: (inputs (L,), targets (L,), user ()) with
    only the last target real. A seeded generator drawn in loader order keeps a run reproducible."""

    def __init__(self, sequences: list[np.ndarray], max_len: int, seed: int, users: np.ndarray | None = None) -> None:
        users = np.zeros(len(sequences), np.int64) if users is None else np.asarray(users, dtype=np.int64)
        keep = [i for i, s in enumerate(sequences) if len(s) >= 2]
        if not keep:
            raise ValueError("no training sequence has two or more items")
        self.sequences, self.users = [sequences[i] for i in keep], users[keep]
        self.max_len, self.rng = max_len, np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        seq = self.sequences[i]
        end = int(self.rng.integers(2, len(seq) + 1))  # predict seq[end - 1] from what precedes it
        window = torch.as_tensor(left_pad([seq[max(0, end - self.max_len - 1):end]], self.max_len + 1)[0])
        targets = torch.full((self.max_len,), PAD, dtype=torch.int64)
        targets[-1] = window[-1]
        return window[:-1], targets, torch.tensor(self.users[i])


class SequenceDataModule(L.LightningDataModule):
    """Training (inputs, targets, users) batches; validation batches are rows of evaluated users."""

    def __init__(self, split: SequenceSplit, *, max_len: int, batch_size: int, seed: int,
                 sampling: str = "windows", eval_batch_size: int = 256) -> None:
        super().__init__()
        if sampling not in SAMPLING:
            raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
        self.split, self.max_len, self.batch_size, self.seed = split, max_len, batch_size, seed
        self.sampling, self.eval_batch_size = sampling, eval_batch_size

    def setup(self, stage: str | None = None) -> None:
        sequences, users = self.split.training_sequences(), self.split.training_users()
        if self.sampling == "windows":
            windows = torch.as_tensor(training_windows(sequences, self.max_len))  # (W, L + 1)
            owners = torch.as_tensor(window_users(sequences, users, self.max_len))  # (W,)
            self.train_set = TensorDataset(windows[:, :-1], windows[:, 1:], owners)
        else:
            self.train_set = SampledPrefixes(sequences, self.max_len, self.seed, users)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True,
                          generator=torch.Generator().manual_seed(self.seed))

    def val_dataloader(self) -> DataLoader:
        rows = torch.arange(len(self.split.user_ids))
        return DataLoader(TensorDataset(rows), batch_size=self.eval_batch_size)
