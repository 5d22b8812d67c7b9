"""What the two learned sequence models share behind the contract: batching, training, saving.

The `nn.Module`s themselves (`recsys.nets.dense`, `recsys.nets.generative`) never import Lightning; `fit` imports
the training code only when it runs.
"""

from __future__ import annotations

import tempfile
from abc import abstractmethod
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from recsys.data.inputs import exclusion_mask, left_pad
from recsys.data.splits import SequenceSplit
from recsys.models.base import Ranking, Recommender, default_exclude
from rqsid.io import load_pretrained

BATCH_USERS = 256


class NeuralRecommender(Recommender):
    module_class: type[torch.nn.Module]
    shared = ("split", "backbone", "training")

    @abstractmethod
    def build_module(self) -> torch.nn.Module:
        """A freshly initialised network from the context's settings."""

    def fit(self, split: SequenceSplit) -> NeuralRecommender:
        import lightning as L

        from recsys.train.fit import train_recommender

        cfg, ctx = self.context.config, self.context
        # Seed before building, so that a model's initial weights do not depend on what ran before it.
        L.seed_everything(cfg.training.seed, workers=True, verbose=False)
        with ExitStack() as stack:  # no output_dir: logs and checkpoints in a folder removed afterwards
            output_dir = Path(ctx.output_dir) if ctx.output_dir else \
                Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sidrec-train-")))
            self.net = train_recommender(self.build_module(), split, ctx.catalogue.size, cfg.training,
                                         output_dir=output_dir, progress=ctx.progress, resume=ctx.resume)
        return self

    def recommend(self, histories: list[np.ndarray], k: int, *, exclude: list[np.ndarray] | None = None,
                  users: np.ndarray | None = None) -> Ranking:
        exclude = default_exclude(histories, exclude)
        users = np.zeros(len(histories), np.int64) if users is None else np.asarray(users, dtype=np.int64)
        items, scores = [], []
        for start in range(0, len(histories), BATCH_USERS):
            rows = slice(start, start + BATCH_USERS)
            r, s = self.rank_batch(histories[rows], exclude[rows], users[rows], k)
            items.append(r)
            scores.append(s)
        return Ranking(np.concatenate(items).astype(np.int64), np.concatenate(scores).astype(np.float32))

    def rank_batch(self, histories: list[np.ndarray], exclude: list[np.ndarray], users: np.ndarray,
                   k: int) -> tuple[np.ndarray, np.ndarray]:
        """One batch through the network's own `recommend` (the ranking validation uses too)."""
        inputs = torch.as_tensor(left_pad(histories, self.net.config.max_len))
        mask = exclusion_mask(exclude, self.context.catalogue.size)
        ranked, scores = self.net.eval().recommend(inputs, mask, k, users=torch.as_tensor(users))
        return ranked.cpu().numpy(), scores.cpu().numpy()

    def save_arrays(self, path: Path) -> None:
        self.net.save_pretrained(path)  # config.json + model.safetensors

    def load_arrays(self, path: Path) -> None:
        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"{path} holds no trained model (model.safetensors is missing)")
        self.net = load_pretrained(self.module_class, path).eval()
