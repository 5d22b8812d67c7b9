"""Named RQ-VAE set-ups: the project's default and the seed model card's."""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

from rqsid.lightning import RQVAETrainingConfig
from rqsid.model import RQVAEConfig, default_codebook_size


class Preset(NamedTuple):
    model: RQVAEConfig
    training: RQVAETrainingConfig
    sid_method: str  # how SIDs are made unique (rqsid.assign.METHODS)


def tiger_preset(num_items: int, input_dim: int) -> Preset:
    """TIGER-style: MLP 512-256-128 to a 32-d latent, 3 learned levels + 1 disambiguation token.

    Codebook size follows the catalogue (`default_codebook_size`); k-means initialisation and dead-code
    re-seeding keep the codebooks in use.
    """
    model = RQVAEConfig(input_dim=input_dim, hidden_dims=(512, 256, 128), latent_dim=32, num_levels=3,
                        codebook_size=default_codebook_size(num_items))
    return Preset(model, RQVAETrainingConfig(), "append")


def seed_preset(num_items: int, input_dim: int) -> Preset:
    """The seed model card's set-up: no encoder, 4 levels x 1024 codes in the input space, commitment 0.25,
    lr 1e-4, batch 128, up to 500 epochs with early stopping, the seed's uniform codebook initialisation.

    Unique 4-token SIDs come from re-assigning the last level collision-free.
    """
    model = RQVAEConfig(input_dim=input_dim, hidden_dims=(), latent_dim=input_dim, num_levels=4,
                        codebook_size=1024, commitment_cost=0.25, standardize=False)
    training = RQVAETrainingConfig(lr=1e-4, batch_size=128, max_epochs=500, patience=20,
                                   kmeans_init=False, reseed_every=0)
    return Preset(model, training, "last-level")


PRESETS = {"tiger": tiger_preset, "seed": seed_preset}


def get_preset(name: str, num_items: int, input_dim: int, **overrides: object) -> Preset:
    """A preset by name; `overrides` replace fields of its model or training config by name."""
    if name not in PRESETS:
        raise ValueError(f"unknown RQ-VAE preset {name!r}; choose one of {sorted(PRESETS)}")
    preset = PRESETS[name](num_items, input_dim)
    model_fields, training_fields = set(vars(preset.model)), set(vars(preset.training))
    unknown = set(overrides) - model_fields - training_fields - {"sid_method"}
    if unknown:
        raise ValueError(f"unknown RQ-VAE setting(s) {sorted(unknown)} for preset {name!r}")
    model = replace(preset.model, **{k: v for k, v in overrides.items() if k in model_fields})
    training = replace(preset.training, **{k: v for k, v in overrides.items() if k in training_fields})
    return Preset(model, training, str(overrides.get("sid_method", preset.sid_method)))
