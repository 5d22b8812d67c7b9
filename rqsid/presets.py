"""Named tokenizer set-ups: the project's RQ-VAE default, the seed model card's, and RQ-KMeans."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from rqsid.model import RQVAEConfig, default_codebook_size
from rqsid.settings import route

if TYPE_CHECKING:  # importing rqsid.lightning imports Lightning: only when a preset is built
    from rqsid.lightning import RQVAETrainingConfig


class Preset(NamedTuple):
    model: RQVAEConfig
    training: RQVAETrainingConfig
    sid_method: str  # how SIDs are made unique (rqsid.assign.METHODS)
    fit: str = "rqvae"  # "rqvae": trained by gradient (rqsid.lightning); "kmeans": residual k-means only


def tiger_preset(num_items: int, input_dim: int) -> Preset:
    """TIGER-style: MLP 512-256-128 to a 32-d latent, 3 learned levels + 1 disambiguation token.

    Codebook size follows the catalogue (`default_codebook_size`); k-means initialisation and dead-code
    re-seeding keep the codebooks in use.
    """
    from rqsid.lightning import RQVAETrainingConfig

    model = RQVAEConfig(input_dim=input_dim, hidden_dims=(512, 256, 128), latent_dim=32, num_levels=3,
                        codebook_size=default_codebook_size(num_items))
    return Preset(model, RQVAETrainingConfig(), "append")


def seed_preset(num_items: int, input_dim: int) -> Preset:
    """The seed model card's set-up: no encoder, 4 levels x 1024 codes in the input space, commitment 0.25,
    lr 1e-4, batch 128, up to 500 epochs with early stopping, the seed's uniform codebook initialisation.

    Unique 4-token SIDs come from re-assigning the last level collision-free.
    """
    from rqsid.lightning import RQVAETrainingConfig

    model = RQVAEConfig(input_dim=input_dim, hidden_dims=(), latent_dim=input_dim, num_levels=4,
                        codebook_size=1024, commitment_cost=0.25, standardize=False)
    training = RQVAETrainingConfig(lr=1e-4, batch_size=128, max_epochs=500, patience=20,
                                   kmeans_init=False, reseed_every=0)
    return Preset(model, training, "last-level")


def rq_kmeans_preset(num_items: int, input_dim: int) -> Preset:
    """RQ-KMeans (`rqsid.rqkmeans`): 3 levels of residual k-means on the raw (unit-norm) embeddings, the
    tiger preset's codebook size, + 1 disambiguation token; nothing trained by gradient."""
    from rqsid.lightning import RQVAETrainingConfig

    model = RQVAEConfig(input_dim=input_dim, hidden_dims=(), latent_dim=input_dim, num_levels=3,
                        codebook_size=default_codebook_size(num_items), standardize=False)
    return Preset(model, RQVAETrainingConfig(), "append", fit="kmeans")


PRESETS = {"tiger": tiger_preset, "seed": seed_preset, "rq-kmeans": rq_kmeans_preset}


def get_preset(name: str, num_items: int, input_dim: int, *, trainer: dict | None = None,
               **overrides: object) -> Preset:
    """A preset by name; `overrides` replace fields of its model or training config by name; `trainer`
    (Lightning flags, as given) replaces the training config's when not empty."""
    if name not in PRESETS:
        raise ValueError(f"unknown RQ-VAE preset {name!r}; choose one of {sorted(PRESETS)}")
    preset = PRESETS[name](num_items, input_dim)
    overrides = dict(overrides)
    sid_method = overrides.pop("sid_method", preset.sid_method)
    if not isinstance(sid_method, str):
        raise ValueError(f"setting sid_method must be a word, got {sid_method!r}")
    routed = route(overrides, {"model": type(preset.model), "training": type(preset.training)},
                   what=f"RQ-VAE setting for preset {name!r}")
    training = {**routed["training"], **({"trainer": dict(trainer)} if trainer else {})}
    return Preset(replace(preset.model, **routed["model"]), replace(preset.training, **training),
                  sid_method, preset.fit)
