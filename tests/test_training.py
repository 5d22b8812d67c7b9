"""Training: the learning-rate schedule (warmup, then constant or cosine), and resuming from the last epoch."""

import math

import numpy as np
import pytest
import torch

from recsys.train.fit import TrainingConfig, lr_factor, train_recommender


def test_lr_factor_by_hand():
    cosine = lr_factor("cosine", 0.1, 100)  # 10 warmup steps, then 90 of decay
    assert [cosine(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert cosine(10) == pytest.approx(1.0)
    assert cosine(55) == pytest.approx(0.5)  # half-way through the decay
    assert cosine(10 + 30) == pytest.approx(0.5 * (1 + math.cos(math.pi / 3)))
    assert cosine(100) == pytest.approx(0.0, abs=1e-12) and cosine(500) == pytest.approx(0.0, abs=1e-12)
    constant = lr_factor("constant", 0.2, 50)
    assert constant(0) == pytest.approx(0.1) and constant(9) == pytest.approx(1.0) and constant(49) == 1.0
    assert lr_factor("cosine", 0.0, 4)(0) == 1.0


@pytest.mark.parametrize("bad", [{"lr_schedule": "linear"}, {"warmup": 1.0}, {"warmup": -0.1}])
def test_training_config_refuses_bad_schedules(bad):
    with pytest.raises(ValueError, match=r"lr_schedule|warmup"):
        TrainingConfig(**bad)


@pytest.mark.parametrize("bad", [{"future_targets": 0}, {"future_targets": 2, "sampling": "prefixes"},
                                 {"future_weight": 0.0}, {"future_weight": 1.5}])
def test_training_config_refuses_bad_future_targets(bad):
    with pytest.raises(ValueError, match="future"):
        TrainingConfig(**bad)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_future_targets_add_the_later_items_losses_by_hand():
    from recsys.nets.dense import DenseConfig, DenseSequentialModel
    from recsys.train.fit import RecommenderModule

    torch.manual_seed(0)
    # eval(): no dropout, whose masks would differ between the loss calls compared
    model = DenseSequentialModel(DenseConfig(d_model=8, n_layers=1, n_heads=1, max_len=4, num_items=10)).eval()
    inputs = torch.tensor([[-1, 3, 4, 5], [1, 2, 3, 4]])  # windows [3 4 5 6] and [1 2 3 4 7]
    targets = torch.tensor([[-1, 4, 5, 6], [2, 3, 4, 7]])
    users = torch.zeros(2, dtype=torch.long)
    module = RecommenderModule(model, None, 10, TrainingConfig(future_targets=3, future_weight=0.5))
    second = torch.tensor([[-1, 5, 6, -1], [3, 4, 7, -1]])  # the item after the next one
    third = torch.tensor([[-1, 6, -1, -1], [4, 7, -1, -1]])
    expected = (model.loss(inputs, targets, users) + 0.5 * model.loss(inputs, second, users)
                + 0.25 * model.loss(inputs, third, users))
    assert float(module.training_step([inputs, targets, users], 0)) == pytest.approx(float(expected), rel=1e-6)
    # windows of two items have no later target: the loss is the next item's alone, and finite
    short = (torch.tensor([[-1, -1, -1, 8]]), torch.tensor([[-1, -1, -1, 9]]), torch.zeros(1, dtype=torch.long))
    assert float(module.training_step(list(short), 0)) == pytest.approx(float(model.loss(*short)), rel=1e-6)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_cosine_schedule_reaches_zero_at_max_epochs(tmp_path):
    from recsys.data.splits import SequenceSplit
    from recsys.nets.dense import DenseConfig, DenseSequentialModel

    rng = np.random.default_rng(0)
    train = [rng.integers(0, 30, 12) for _ in range(16)]
    split = SequenceSplit(name="leave-one-out", user_ids=np.arange(16), train=train,
                          valid_target=rng.integers(0, 30, 16), test_target=rng.integers(0, 30, 16),
                          extra_train=[], skipped_users=0)
    torch.manual_seed(0)
    model = DenseSequentialModel(DenseConfig(d_model=8, n_layers=1, n_heads=1, max_len=6, num_items=30))
    seen = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = spy
    try:
        train_recommender(model, split, 30, TrainingConfig(lr=0.01, batch_size=8, max_epochs=3, val_every=1,
                                                           patience=5, lr_schedule="cosine", warmup=0.25),
                          output_dir=tmp_path, progress=False)
    finally:
        torch.optim.AdamW.step = original
    steps = len(seen)  # 16 users x 2 windows of 6 + 1 items / batch 8 = 4 per epoch, 3 epochs
    assert steps == 12
    expected = [0.01 * lr_factor("cosine", 0.25, steps)(s) for s in range(steps)]
    assert seen == pytest.approx(expected)
    assert seen[0] < seen[2] and seen[-1] < 0.01 * 0.1


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_resume_continues_from_the_last_epoch_and_a_fresh_fit_starts_clean(tmp_path):
    """last.ckpt is written after every epoch (not only with a new best), and a resumed fit's metrics.csv
    holds every epoch once (issue 14, defect 3); a fresh fit into the same folder keeps nothing of them."""
    import pandas as pd

    from recsys.data.splits import SequenceSplit
    from recsys.nets.dense import DenseConfig, DenseSequentialModel

    rng = np.random.default_rng(0)
    train = [rng.integers(0, 30, 12) for _ in range(16)]
    split = SequenceSplit(name="leave-one-out", user_ids=np.arange(16), train=train,
                          valid_target=rng.integers(0, 30, 16), test_target=rng.integers(0, 30, 16),
                          extra_train=[], skipped_users=0)

    def fit(epochs: int, resume: bool) -> None:
        torch.manual_seed(0)
        model = DenseSequentialModel(DenseConfig(d_model=8, n_layers=1, n_heads=1, max_len=6, num_items=30))
        train_recommender(model, split, 30, TrainingConfig(batch_size=8, max_epochs=epochs, val_every=2, patience=9),
                          output_dir=tmp_path, progress=False, resume=resume)

    fit(3, resume=False)  # as if stopped after epoch index 2; validation ran at epoch index 1 only
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 2
    fit(6, resume=True)
    log = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    trained = log.dropna(subset=["train/loss"])
    assert trained["epoch"].tolist() == [0, 1, 2, 3, 4, 5]
    assert log.dropna(subset=["val/ndcg@10"])["epoch"].tolist() == [1, 3, 5]

    # A fresh fit into the same folder starts clean: no earlier checkpoint, log line or TensorBoard file
    fit(2, resume=False)
    log = pd.read_csv(tmp_path / "logs" / "metrics.csv")
    assert log.dropna(subset=["train/loss"])["epoch"].tolist() == [0, 1]
    assert len(list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
