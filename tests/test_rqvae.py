import numpy as np
import pytest
import torch

from rqsid.assign import append_disambiguation_token, assign_semantic_ids, sid_strings
from rqsid.lightning import RQVAETrainingConfig, train_rqvae
from rqsid.model import RQVAE, RQVAEConfig, default_codebook_size
from rqsid.presets import get_preset

TINY = {"input_dim": 24, "hidden_dims": (16,), "latent_dim": 8, "num_levels": 2, "codebook_size": 8}


@pytest.mark.parametrize(("num_items", "size"), [(1, 16), (1682, 32), (3883, 64), (87585, 256), (10**7, 256)])
def test_default_codebook_size_follows_catalogue(num_items, size):
    assert default_codebook_size(num_items) == size


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"latent_dim": 0}, "latent_dim"), ({"hidden_dims": (), "latent_dim": 8}, "latent_dim .* input_dim"),
     ({"commitment_cost": -0.1}, "commitment_cost"), ({"dropout": 1.0}, "dropout"),
     ({"codebook_size": 2.5}, "codebook_size")],
)
def test_config_validates_itself(changes, message):
    with pytest.raises(ValueError, match=message):
        RQVAEConfig(**{**TINY, **changes})


def test_latent_can_be_negative_and_output_shapes():
    model = RQVAE(RQVAEConfig(**TINY))
    out = model(torch.randn(64, 24))
    assert out.reconstruction.shape == (64, 24) and out.latent.shape == (64, 8)
    assert out.semantic_ids.shape == (64, 2)
    assert (out.latent < 0).any()  # no activation after the encoder's last layer


def test_save_and_load_round_trip(tmp_path):
    model = RQVAE(RQVAEConfig(**TINY))
    model.fit_standardizer(torch.randn(100, 24) * 3 + 1)
    model.save_pretrained(tmp_path)
    loaded = RQVAE.from_pretrained(str(tmp_path))
    assert loaded.config == model.config
    x = torch.randn(10, 24)
    torch.testing.assert_close(loaded(x).reconstruction, model(x).reconstruction)


def tiny_training(seed: int = 0, **changes) -> RQVAETrainingConfig:
    settings = {"max_epochs": 8, "batch_size": 32, "seed": seed, "reseed_every": 2,
                "trainer": {"enable_checkpointing": True}, **changes}
    return RQVAETrainingConfig(**settings)


def train_tiny(tmp_path, embeddings, model=None, **changes):
    return train_rqvae(embeddings, RQVAEConfig(**{**TINY, **(model or {})}), tiny_training(**changes),
                       output_dir=tmp_path, progress=False)


@pytest.mark.slow
def test_training_reduces_loss_and_writes_logs(tmp_path, clustered_embeddings):
    import pandas as pd

    train_tiny(tmp_path, clustered_embeddings[0], max_epochs=15)
    logged = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    reconstruction = logged["train/reconstruction"].dropna().to_numpy()
    assert len(reconstruction) == 15 and reconstruction[-1] < 0.8 * reconstruction[0]
    assert logged["val/loss"].notna().sum() == 15
    assert (tmp_path / "checkpoints" / "best.ckpt").exists()
    assert (tmp_path / "tensorboard").is_dir()


@pytest.mark.slow
def test_same_seed_gives_identical_sids(tmp_path, clustered_embeddings):
    x = clustered_embeddings[0]
    first = assign_semantic_ids(train_tiny(tmp_path / "a", x).model, x).sids
    second = assign_semantic_ids(train_tiny(tmp_path / "b", x).model, x).sids
    np.testing.assert_array_equal(first, second)


@pytest.mark.slow
@pytest.mark.parametrize(("method", "length"), [("append", 3), ("last-level", 2)])
def test_every_item_gets_a_unique_sid(tmp_path, clustered_embeddings, method, length):
    x = clustered_embeddings[0]
    # 64 codes per level for 240 items: every prefix group fits the last level's codebook.
    module = train_tiny(tmp_path, x, model={"codebook_size": 64}, max_epochs=3)
    result = assign_semantic_ids(module.model, x, method=method)
    assert result.sids.shape == (len(x), length)
    assert len(np.unique(result.sids, axis=0)) == len(x)
    if method == "append":
        np.testing.assert_array_equal(result.sids[:, :2], result.learned)


@pytest.mark.slow
def test_sids_do_not_depend_on_row_order(tmp_path, clustered_embeddings):
    # Exporting through a shuffled loader scrambles item<->SID; assignment must follow row order.
    x = clustered_embeddings[0]
    model = train_tiny(tmp_path, x, max_epochs=3).model
    perm = np.random.default_rng(0).permutation(len(x))
    learned = assign_semantic_ids(model, x, batch_size=7).learned
    np.testing.assert_array_equal(assign_semantic_ids(model, x[perm], batch_size=50).learned, learned[perm])


def test_append_token_ranks_collisions_by_key():
    learned = np.array([[1, 2], [1, 2], [3, 4], [1, 2]])
    sids = append_disambiguation_token(learned, np.array([0.5, 0.1, 0.9, 0.3]))
    np.testing.assert_array_equal(sids[:, 2], [2, 0, 0, 1])
    assert sid_strings(sids[:1]) == ["1-2-2"]


def test_last_level_refuses_groups_larger_than_the_codebook(tmp_path):
    x = np.tile(np.eye(24, dtype=np.float32)[:1], (20, 1)) + 1e-3  # 20 identical items, 8 codes
    model = RQVAE(RQVAEConfig(**TINY))
    with pytest.raises(ValueError, match="20 items share one SID prefix"):
        assign_semantic_ids(model, x, method="last-level")


def test_nan_embeddings_are_refused(tmp_path, clustered_embeddings):
    x = clustered_embeddings[0].copy()
    x[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN/inf in 1 rows \(first: \[3\]\)"):
        train_tiny(tmp_path, x)


def test_presets_and_overrides():
    seed = get_preset("seed", 1682, 768)
    assert (seed.model.num_levels, seed.model.codebook_size, seed.model.hidden_dims) == (4, 1024, ())
    assert (seed.training.lr, seed.training.batch_size, seed.training.max_epochs) == (1e-4, 128, 500)
    tiger = get_preset("tiger", 1682, 768, codebook_size=64, max_epochs=5)
    assert tiger.model.codebook_size == 64 and tiger.training.max_epochs == 5
    with pytest.raises(ValueError, match="unknown RQ-VAE setting"):
        get_preset("tiger", 10, 768, codebook_sise=3)
    with pytest.raises(ValueError, match="unknown RQ-VAE preset"):
        get_preset("nope", 10, 768)


@pytest.mark.slow
def test_a_resumed_rqvae_keeps_its_restored_codebooks(tmp_path, clustered_embeddings, monkeypatch):
    """The standardiser and the k-means initialisation run on a fresh start only: on resume they would
    throw the checkpoint's codebooks away (issue 14, defect 4). The resumed training starts from exactly
    the checkpoint's weights; it is not bit-identical to an uninterrupted one, since the shuffling
    generator restarts."""
    from rqsid.lightning import RQVAEModule
    from rqsid.quantizer import ResidualQuantizer

    x, _ = clustered_embeddings
    config, first = RQVAEConfig(**TINY), RQVAETrainingConfig(max_epochs=2, patience=5, reseed_every=0, seed=0)
    train_rqvae(x, config, first, output_dir=tmp_path, progress=False)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    started, inits = {}, []
    original = RQVAEModule.on_train_epoch_start if hasattr(RQVAEModule, "on_train_epoch_start") else None

    def record(self):
        started.setdefault("weights", {k: v.clone() for k, v in self.state_dict().items()})
        if original:
            original(self)

    monkeypatch.setattr(RQVAEModule, "on_train_epoch_start", record)
    monkeypatch.setattr(ResidualQuantizer, "kmeans_init", lambda *a, **k: inits.append(1))
    more = RQVAETrainingConfig(max_epochs=4, patience=5, reseed_every=0, seed=0)
    train_rqvae(x, config, more, output_dir=tmp_path, progress=False, resume=True)
    assert not inits
    for name, value in saved.items():
        torch.testing.assert_close(started["weights"][name], value, rtol=0, atol=0)
