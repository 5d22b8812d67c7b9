"""Lightning wrappers for the RQ-VAE: the training module, the data module, and `train_rqvae`.

Kept apart from `rqsid.model` so that loading a trained quantiser never imports Lightning.
"""

from __future__ import annotations

import csv
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, TensorDataset

from rqsid.errors import TrainingInterrupted
from rqsid.model import RQVAE, RQVAEConfig

log = logging.getLogger(__name__)


@dataclass
class RQVAETrainingConfig:
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    max_epochs: int = 300
    patience: int = 30  # early stopping, in epochs without a better validation loss
    val_fraction: float = 0.1
    kmeans_init: bool = True
    # Re-seed unused codes every `reseed_every` epochs until `reseed_until` (fraction of max_epochs),
    # leaving the tail of training to converge without codebook jumps.
    reseed_every: int = 5
    reseed_until: float = 0.5
    seed: int = 42
    trainer: dict[str, Any] = field(default_factory=dict)  # accelerator, devices, strategy, precision, ...

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError(f"RQVAETrainingConfig: lr, batch_size, max_epochs, patience must be > 0: {self}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"RQVAETrainingConfig.val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.reseed_every < 0 or not 0 <= self.reseed_until <= 1:
            raise ValueError("RQVAETrainingConfig: reseed_every >= 0 and reseed_until in [0, 1] required")


class EmbeddingDataModule(L.LightningDataModule):
    """Splits an (N, D) float array into train/validation rows with a seeded permutation."""

    def __init__(self, embeddings: np.ndarray, *, batch_size: int, val_fraction: float, seed: int) -> None:
        super().__init__()
        self.embeddings = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        self.batch_size, self.val_fraction, self.seed = batch_size, val_fraction, seed

    def setup(self, stage: str | None = None) -> None:
        n = len(self.embeddings)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))
        n_val = max(1, round(n * self.val_fraction))
        self.train_rows, self.val_rows = perm[n_val:], perm[:n_val]

    @property
    def train_embeddings(self) -> torch.Tensor:
        return self.embeddings[self.train_rows]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(
            TensorDataset(self.train_embeddings), batch_size=self.batch_size, shuffle=True,
            generator=torch.Generator().manual_seed(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.embeddings[self.val_rows]), batch_size=self.batch_size)


def check_finite(loss: torch.Tensor, module: L.LightningModule) -> None:
    """Stop a training whose loss is NaN or infinite (e.g. lr=1e9), with the step it happened at, before any
    checkpoint or model is written from the broken weights."""
    if not torch.isfinite(loss):
        raise ValueError(f"{type(module).__name__}: the training loss became {float(loss.detach())} at epoch "
                         f"{module.current_epoch}, step {module.global_step}; lower lr or check the inputs")


class RQVAEModule(L.LightningModule):
    def __init__(self, config: RQVAEConfig, training: RQVAETrainingConfig) -> None:
        super().__init__()
        self.model = RQVAE(config)
        self.training_config = training
        self.reseeded: list[list[int]] = []  # per re-seeding: dead codes per level (for the report)
        self._reseed_generator = torch.Generator().manual_seed(training.seed)

    def on_fit_start(self) -> None:
        if self.trainer.ckpt_path:  # resumed: the checkpoint's standardiser and codebooks were just restored
            return
        train = self.trainer.datamodule.train_embeddings.to(self.device)
        self.model.fit_standardizer(train)
        if self.training_config.kmeans_init:
            self.model.quantizer.kmeans_init(self.model.encode(train), seed=self.training_config.seed)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        out = self.model(batch[0])
        check_finite(out.loss, self)
        self.log_dict({"train/loss": out.loss, "train/reconstruction": out.reconstruction_loss,
                       "train/quantization": out.quantization_loss}, on_epoch=True, on_step=False)
        return out.loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        out = self.model(batch[0])
        check_finite(out.loss, self)
        cosine = torch.nn.functional.cosine_similarity(out.reconstruction, batch[0]).mean()
        self.log_dict({"val/loss": out.loss, "val/reconstruction": out.reconstruction_loss,
                       "val/quantization": out.quantization_loss, "val/cosine": cosine}, prog_bar=True,
                      sync_dist=True)  # DDP: every process sees the same monitored value

    def on_train_epoch_end(self) -> None:
        cfg = self.training_config
        epoch = self.current_epoch + 1
        if cfg.reseed_every and epoch % cfg.reseed_every == 0 and epoch <= cfg.reseed_until * cfg.max_epochs:
            train = self.trainer.datamodule.train_embeddings.to(self.device)
            with torch.no_grad():
                latent = self.model.encode(train)
                dead = self.model.quantizer.reseed_dead_codes(latent, self._reseed_generator)
            self.reseeded.append(dead)
            self.log("train/reseeded", float(sum(dead)))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cfg = self.training_config
        # The fused kernel halves the step time of the seed preset's 3M codebook parameters on CPU.
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


def train_rqvae(
    embeddings: np.ndarray,
    config: RQVAEConfig,
    training: RQVAETrainingConfig,
    *,
    output_dir: Path,
    progress: bool = True,
    resume: bool = False,
) -> RQVAEModule:
    """Train an RQ-VAE on embeddings (N, D); logs and the best checkpoint go under output_dir.

    Returns the module with the best validation checkpoint's weights loaded.
    """
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != config.input_dim:
        raise ValueError(f"embeddings must have shape (N, {config.input_dim}), got {embeddings.shape}")
    if not np.isfinite(embeddings).all():
        bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=1))
        raise ValueError(f"embeddings contain NaN/inf in {len(bad)} rows (first: {bad[:5].tolist()})")
    L.seed_everything(training.seed, workers=True, verbose=False)
    data = EmbeddingDataModule(embeddings, batch_size=training.batch_size,
                               val_fraction=training.val_fraction, seed=training.seed)
    module = RQVAEModule(config, training)
    trainer, best = fit_best(module, data, output_dir=Path(output_dir), monitor="val/loss", mode="min",
                             max_epochs=training.max_epochs, patience=training.patience, progress=progress,
                             trainer_flags=training.trainer, resume=resume, log_every_n_steps=1)
    log.info("RQ-VAE: best val/loss %.4f after %d epochs", best, trainer.current_epoch)
    return module.cpu().eval()


def check_checkpoint(path: Path) -> None:
    """Fail with a clear message, not a traceback from inside torch, when a checkpoint cannot be read."""
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds (pickle, zip, EOF, runtime) for a damaged file
        raise ValueError(f"{path}: damaged checkpoint ({type(err).__name__}); delete it or run without "
                         f"--resume to train from the start") from err


def keep_log_until(logger: CSVLogger, epoch: int) -> None:
    """On resume: keep metrics.csv's rows up to `epoch` (the checkpoint's), which Lightning's CSV writer
    would otherwise delete when it starts, so that the log of a resumed fit holds every epoch once."""
    path = Path(logger.log_dir) / "metrics.csv"
    rows, keys = [], []
    if path.exists():
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            keys = list(reader.fieldnames or [])
            rows = [row for row in reader if row.get("epoch") not in (None, "") and int(row["epoch"]) <= epoch]
    writer = logger.experiment  # creating the writer deletes the old file
    if rows:
        with path.open("w", newline="") as file:
            out = csv.DictWriter(file, fieldnames=sorted(keys))  # the order Lightning writes
            out.writeheader()
            out.writerows(rows)
        writer.metrics_keys = sorted(keys)


def fit_best(module: L.LightningModule, data: L.LightningDataModule, *, output_dir: Path, monitor: str,
             mode: str, max_epochs: int, patience: int, progress: bool, trainer_flags: dict[str, Any],
             resume: bool = False, **trainer_kwargs: Any) -> tuple[L.Trainer, float]:
    """Fit with early stopping on `monitor`, CSV + TensorBoard logs under output_dir, and load the best
    checkpoint's weights back into `module`. Returns the trainer and the best monitored value.

    CPU and deterministic unless `trainer_flags` (accelerator, devices, strategy, ...) say otherwise.
    resume=True continues from output_dir/checkpoints/last.ckpt (weights, optimizer, epoch, early-stopping
    state) when it exists; otherwise an earlier fit's checkpoints and logs are removed, so that a fresh fit
    never mixes with them (an interrupted attempt's TensorBoard curves would otherwise stay beside the new).
    """
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    if resume and last.exists():
        check_checkpoint(last)
        log.info("resuming from %s", last)
    else:
        for part in ("checkpoints", "logs", "tensorboard"):
            shutil.rmtree(Path(output_dir) / part, ignore_errors=True)
    # Bit-exact on CPU; some CUDA kernels (e.g. attention backward) have no deterministic version: warn there.
    deterministic = True if trainer_flags.get("accelerator", "cpu") == "cpu" else "warn"
    checkpoint = ModelCheckpoint(dirpath=Path(output_dir) / "checkpoints", monitor=monitor, mode=mode,
                                 filename="best")
    # last.ckpt after every epoch (Lightning's save_last writes it only with a new best), so a resumed fit
    # loses at most one epoch
    every_epoch = ModelCheckpoint(dirpath=Path(output_dir) / "checkpoints", filename="last", monitor=None,
                                  save_top_k=1, every_n_epochs=1, save_on_train_epoch_end=True,
                                  enable_version_counter=False)
    csv_log = CSVLogger(output_dir, name="logs", version="")
    if resume and last.exists():
        keep_log_until(csv_log, int(torch.load(last, map_location="cpu", weights_only=True)["epoch"]))
    trainer = L.Trainer(
        max_epochs=max_epochs,
        callbacks=[EarlyStopping(monitor, patience=patience, mode=mode), checkpoint, every_epoch],
        logger=[csv_log, TensorBoardLogger(output_dir, name="tensorboard", version="")],
        enable_progress_bar=progress, enable_model_summary=False,
        **{"accelerator": "cpu", "devices": 1, "deterministic": deterministic, **trainer_kwargs, **trainer_flags},
    )
    try:
        trainer.fit(module, datamodule=data, ckpt_path=last if resume and last.exists() else None)
    except SIGTERMException as err:  # a SystemExit with status 0 to Lightning: a scheduler would see success
        raise TrainingInterrupted(f"received SIGTERM while training into {output_dir}") from err
    except SystemExit as err:  # Lightning turns Ctrl-C into sys.exit(1): give the caller its KeyboardInterrupt back
        if trainer.interrupted:
            raise KeyboardInterrupt from err
        raise
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    return trainer, float(checkpoint.best_model_score)
