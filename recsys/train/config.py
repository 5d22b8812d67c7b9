"""How a net of `recsys.nets` is trained (`recsys.train.fit`); importable without Lightning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SAMPLING = ("windows", "prefixes")  # whole sequences with causal masking, or one random prefix per user
MONITOR = "val/ndcg@10"
LR_SCHEDULES = ("constant", "cosine")


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
    # Learning-rate schedule per optimiser step: "constant", or "cosine" decay to 0 at max_epochs; either
    # after a linear warmup over the first `warmup` fraction of max_epochs' steps.
    lr_schedule: str = "constant"
    warmup: float = 0.0
    # How many of the following items each position learns to predict: 1 = the next one only; J > 1 adds
    # the j-th next item's loss with weight future_weight ** (j - 1) (windows sampling only). Items rated
    # in one session, often in one second, come in an arbitrary order, so the ones after the next are
    # nearly as much "what comes next" as the next one is.
    future_targets: int = 1
    future_weight: float = 0.5
    seed: int = 42
    trainer: dict[str, Any] = field(default_factory=dict)  # accelerator, devices, strategy, precision, ...

    def __post_init__(self) -> None:
        if self.lr <= 0 or min(self.batch_size, self.max_epochs, self.patience, self.val_every) < 1:
            raise ValueError(f"TrainingConfig: every size and rate must be positive: {self}")
        if self.sampling not in SAMPLING:
            raise ValueError(f"TrainingConfig.sampling must be one of {SAMPLING}, got {self.sampling!r}")
        if self.val_every > self.max_epochs:
            raise ValueError(f"val_every ({self.val_every}) exceeds max_epochs ({self.max_epochs}): no validation "
                             f"would choose the checkpoint; set val_every <= max_epochs")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"TrainingConfig.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"TrainingConfig.warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if not isinstance(self.future_targets, int) or self.future_targets < 1:
            raise ValueError(f"TrainingConfig.future_targets must be an integer >= 1, got {self.future_targets!r}")
        if self.future_targets > 1 and self.sampling != "windows":
            raise ValueError("TrainingConfig.future_targets > 1 needs sampling 'windows' (a sampled prefix has "
                             "one target only)")
        if not 0 < self.future_weight <= 1:
            raise ValueError(f"TrainingConfig.future_weight must be in (0, 1], got {self.future_weight!r}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"TrainingConfig.max_minutes must be positive, got {self.max_minutes}")
