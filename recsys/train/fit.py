"""Lightning training for both sequence models, with early stopping on validation NDCG@10.

Kept apart from the models so that loading one for inference never imports Lightning.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from recsys.data.splits import SequenceSplit
from recsys.evaluation.metrics import ndcg_at_k, recall_at_k
from recsys.train.batches import PAD, SequenceDataModule, exclusion_mask, left_pad, stage_histories
from recsys.train.config import MONITOR, TrainingConfig
from rqsid.lightning import check_finite, fit_best

log = logging.getLogger(__name__)
def stage_batch(model: nn.Module, split: SequenceSplit, rows: np.ndarray, stage: str,
                num_items: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded histories (B, L), their exclusion mask (B, N) and user ids (B,) for evaluated users
    `rows` at `stage` ("valid" or "test")."""
    histories = stage_histories(split, rows, stage)
    items = torch.as_tensor(left_pad(histories, model.config.max_len))
    users = torch.as_tensor(split.user_ids[rows].astype(np.int64))  # hashed into the user token, if any
    return items, exclusion_mask(histories, num_items), users


def recommend_batch(model: nn.Module, split: SequenceSplit, rows: np.ndarray, stage: str, k: int,
                    num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k item indices and scores for evaluated users `rows` at `stage`, history excluded, by the
    network's own `recommend(items, exclude, k, users)` (both sequence models have it)."""
    items, exclude, users = stage_batch(model, split, rows, stage, num_items)
    ranked, scores = model.recommend(items, exclude, k, users=users)
    return ranked, scores


class RecommenderModule(L.LightningModule):
    def __init__(self, model: nn.Module, split: SequenceSplit, num_items: int, training: TrainingConfig):
        super().__init__()
        self.model, self.split, self.num_items, self.training_config = model, split, num_items, training
        # Validation figures per user, averaged over every process's users: a MeanMetric syncs its sum and
        # count under DDP, so unequal shares weigh right. One per logged name, made at the first batch.
        self.val_means = nn.ModuleDict()
        self._val_names: dict[str, str] = {}  # logged name -> ModuleDict key (no "." or "/" allowed there)
        # The cold-start split's cold movies do not exist while the models train (recsys.data.splits)
        cold = split.cold_items if split is not None else np.empty(0, np.int64)
        self.existing = None
        if len(cold):
            self.existing = torch.ones(num_items, dtype=torch.bool)
            self.existing[torch.as_tensor(cold)] = False

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets, users = batch  # (B, L), (B, L), (B,); PAD targets are not scored
        existing = None if self.existing is None else self.existing.to(inputs.device)
        loss = self.model.loss(inputs, targets, users, existing)
        cfg = self.training_config
        for offset in range(1, cfg.future_targets):  # the item `offset` places after each next one
            later = F.pad(targets[:, offset:], (0, offset), value=PAD)  # (B, L)
            if (later[inputs >= 0] >= 0).any():  # a batch of short windows may have none
                loss = loss + cfg.future_weight ** offset * self.model.loss(inputs, later, users, existing)
        check_finite(loss, self)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        rows = batch[0].cpu().numpy()
        items, exclude, users = stage_batch(self.model, self.split, rows, "valid", self.num_items)
        items, users = items.to(self.device), users.to(self.device)
        ranked, _ = self.model.recommend(items, exclude, 10, users=users)
        ranked, targets = ranked.cpu().numpy(), self.split.valid_target[rows]
        self._update(MONITOR, torch.as_tensor(ndcg_at_k(ranked, targets, 10)))
        self._update("val/recall@10", torch.as_tensor(recall_at_k(ranked, targets, 10)))
        # Where the loss sits, beside the ranking (nats per item, and per SID level for the SID model)
        targets = torch.as_tensor(targets, device=self.device)
        for name, values in self.model.diagnostics(items, targets, users).items():
            self._update(f"val/{name}", values)

    def _update(self, name: str, values: torch.Tensor) -> None:
        key = self._val_names.setdefault(name, f"m{len(self._val_names)}")
        if key not in self.val_means:
            self.val_means[key] = MeanMetric().to(self.device)
        self.val_means[key].update(values.detach().float().to(self.device))

    def on_validation_epoch_end(self) -> None:
        for i, (name, key) in enumerate(self._val_names.items()):
            # compute() syncs across processes; the ranking figures go on the progress bar
            self.log(name, self.val_means[key].compute(), prog_bar=i < 2)
            self.val_means[key].reset()

    def configure_optimizers(self) -> torch.optim.Optimizer | dict[str, Any]:
        cfg = self.training_config
        # fused: one kernel over all parameters instead of ~10 small ops per tensor (the per-tensor loop cost
        # about as much as a small model's forward pass on a CPU: bench/results/epoch-speed-*.json)
        optimiser = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
        if cfg.lr_schedule == "constant" and cfg.warmup == 0:
            return optimiser
        factor = lr_factor(cfg.lr_schedule, cfg.warmup, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, factor)
        return {"optimizer": optimiser, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def lr_factor(schedule: str, warmup: float, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at optimiser step s (0-based) of `total_steps`:
    (s + 1) / W during the W = warmup * total_steps warmup steps, then 1 ("constant") or
    (1 + cos(pi * (s - W) / (total_steps - W))) / 2 ("cosine")."""
    warm = int(warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return factor


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
