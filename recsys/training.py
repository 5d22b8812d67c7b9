"""Lightning training for both sequence models, with early stopping on validation NDCG@10.

Kept apart from the models so that loading one for inference never imports Lightning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from recsys.data import SAMPLING, SequenceDataModule, exclusion_mask, left_pad, stage_histories
from recsys.metrics import ndcg_at_k, recall_at_k
from recsys.sequences import SequenceSplit
from rqsid.lightning import fit_best

log = logging.getLogger(__name__)
MONITOR = "val/ndcg@10"


@dataclass
class TrainingConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 120
    patience: int = 8  # validation checks without a better NDCG@10
    val_every: int = 2  # epochs between validation checks (every validation user ranked)
    max_minutes: float | None = None  # wall-clock cap on each model's training (Lightning max_time), if any
    sampling: str = "windows"  # whole sequences with causal masking, or one random prefix per user (data.py)
    seed: int = 42
    trainer: dict[str, Any] = field(default_factory=dict)  # accelerator, devices, strategy, precision, ...

    def __post_init__(self) -> None:
        if self.lr <= 0 or min(self.batch_size, self.max_epochs, self.patience, self.val_every) < 1:
            raise ValueError(f"TrainingConfig: every size and rate must be positive: {self}")
        if self.sampling not in SAMPLING:
            raise ValueError(f"TrainingConfig.sampling must be one of {SAMPLING}, got {self.sampling!r}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"TrainingConfig.max_minutes must be positive, got {self.max_minutes}")


def recommend_batch(model: nn.Module, split: SequenceSplit, rows: np.ndarray, stage: str, k: int,
                    num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k item indices and scores for evaluated users `rows` at `stage`, history excluded, by the
    network's own `recommend(items, exclude, k, users)` (both sequence models have it)."""
    histories = stage_histories(split, rows, stage)
    items = torch.as_tensor(left_pad(histories, model.config.max_len))
    exclude = exclusion_mask(histories, num_items)
    users = torch.as_tensor(split.user_ids[rows].astype(np.int64))  # hashed into the user token, if any
    ranked, scores = model.recommend(items, exclude, k, users=users)
    return ranked, scores


class RecommenderModule(L.LightningModule):
    def __init__(self, model: nn.Module, split: SequenceSplit, num_items: int, training: TrainingConfig):
        super().__init__()
        self.model, self.split, self.num_items, self.training_config = model, split, num_items, training
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets, users = batch  # (B, L), (B, L), (B,); PAD targets are not scored
        loss = self.model.loss(inputs, targets, users)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        rows = batch[0].cpu().numpy()
        ranked, _ = recommend_batch(self.model, self.split, rows, "valid", 10, self.num_items)
        self._val.append((ranked.cpu().numpy(), self.split.valid_target[rows]))

    def on_validation_epoch_end(self) -> None:
        ranked = np.concatenate([r for r, _ in self._val])
        targets = np.concatenate([t for _, t in self._val])
        self._val.clear()
        # Under DDP each process validated its share of users: sync_dist averages the shares.
        self.log_dict({MONITOR: float(ndcg_at_k(ranked, targets, 10).mean()),
                       "val/recall@10": float(recall_at_k(ranked, targets, 10).mean())}, prog_bar=True,
                      sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.training_config
        # fused: one kernel over all parameters instead of ~10 small ops per tensor (the per-tensor loop cost
        # about as much as a small model's forward pass on a CPU: bench/results/epoch-speed-*.json)
        return torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def train_recommender(model: nn.Module, split: SequenceSplit, num_items: int, training: TrainingConfig, *,
                      output_dir: Path, progress: bool = True, resume: bool = False) -> nn.Module:
    """Fit `model` on the split's training sequences; returns it with the best validation weights."""
    L.seed_everything(training.seed, workers=True, verbose=False)
    data = SequenceDataModule(split, max_len=model.config.max_len, batch_size=training.batch_size,
                              seed=training.seed, sampling=training.sampling)
    module = RecommenderModule(model, split, num_items, training)
    _, best = fit_best(module, data, output_dir=Path(output_dir), monitor=MONITOR, mode="max",
                       max_epochs=training.max_epochs, patience=training.patience, progress=progress,
                       trainer_flags=training.trainer, resume=resume, check_val_every_n_epoch=training.val_every,
                       num_sanity_val_steps=0,
                       **({"max_time": {"minutes": training.max_minutes}} if training.max_minutes else {}))
    log.info("%s: best %s %.4f", type(model).__name__, MONITOR, best)
    return module.model.cpu().eval()
