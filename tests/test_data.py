"""Training batches: whole-sequence windows and sampled prefixes."""

import numpy as np
import pytest
import torch

from recsys.train.batches import PAD, SampledPrefixes, left_pad, training_windows


def test_windows_predict_every_target_once():
    sequences = [np.arange(1, 8), np.arange(10, 12), np.array([20])]
    windows = training_windows(sequences, max_len=3)  # (W, 4)
    targets = windows[:, 1:][(windows[:, :-1] != PAD) & (windows[:, 1:] != PAD)]
    assert sorted(targets.tolist()) == [2, 3, 4, 5, 6, 7, 11]  # every item but each user's first


def test_left_pad_keeps_the_most_recent_items():
    np.testing.assert_array_equal(left_pad([np.array([1, 2, 3, 4]), np.array([5])], 3),
                                  [[2, 3, 4], [PAD, PAD, 5]])


def test_sampled_prefixes_score_only_the_next_item_of_a_true_prefix():
    sequences = [np.arange(100, 130), np.array([7, 8])]
    data = SampledPrefixes(sequences, max_len=5, seed=0)
    for _ in range(20):
        for i, seq in enumerate(sequences):
            inputs, targets, _ = data[i]
            assert (targets[:-1] == PAD).all() and targets[-1] != PAD
            target = int(targets[-1])
            position = int(np.flatnonzero(seq == target)[0])
            assert position >= 1
            expected = seq[max(0, position - 5):position]
            assert inputs[inputs != PAD].tolist() == expected.tolist()


def test_sampled_prefixes_are_reproducible_and_vary_between_epochs():
    sequences = [np.arange(50)]
    first_target = lambda: int(SampledPrefixes(sequences, 10, seed=3)[0][1][-1])  # noqa: E731
    assert first_target() == first_target()
    data = SampledPrefixes(sequences, 10, seed=3)
    assert len({int(data[0][1][-1]) for _ in range(30)}) > 5


def test_no_trainable_sequence_is_a_clear_error():
    with pytest.raises(ValueError, match="two or more items"):
        SampledPrefixes([np.array([1])], 5, seed=0)
    assert torch.is_tensor(SampledPrefixes([np.array([1, 2])], 5, seed=0)[0][0])


@pytest.mark.parametrize("bad", [{"sampling": "random"}, {"max_minutes": 0}, {"batch_size": 0}])
def test_training_config_rejects_bad_settings(bad):
    from recsys.train.fit import TrainingConfig

    with pytest.raises(ValueError, match=next(iter(bad)) if "batch" not in next(iter(bad)) else "positive"):
        TrainingConfig(**bad)


def test_window_users_follow_the_windows():
    from recsys.train.batches import window_users

    sequences = [np.arange(1, 8), np.array([9]), np.arange(10, 13)]
    windows = training_windows(sequences, max_len=3)
    owners = window_users(sequences, np.array([70, 80, 90]), max_len=3)
    assert len(owners) == len(windows)
    for window, owner in zip(windows, owners, strict=True):
        items = set(window[window != PAD].tolist())
        assert items <= set(range(1, 8)) if owner == 70 else items <= {10, 11, 12}


def test_sampled_prefixes_carry_the_user():
    data = SampledPrefixes([np.array([1]), np.array([5, 6, 7])], 4, seed=0, users=np.array([11, 22]))
    assert len(data) == 1 and int(data[0][2]) == 22


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_user_token_reaches_training_and_recommendation():
    """With user_buckets > 0, the same history gives different recommendations for different users, both
    through a training step and through recommend_batch (what validation and test use)."""
    from recsys.data.splits import SequenceSplit
    from recsys.nets.dense import DenseConfig, DenseSequentialModel
    from recsys.train.fit import RecommenderModule, TrainingConfig, recommend_batch

    torch.manual_seed(0)
    history = np.array([0, 1, 2, 3])
    split = SequenceSplit(name="leave-one-out", user_ids=np.array([1, 2]), train=[history, history],
                          valid_target=np.array([4, 5]), test_target=np.array([6, 7]), extra_train=[],
                          skipped_users=0)
    model = DenseSequentialModel(DenseConfig(d_model=8, n_layers=1, n_heads=1, max_len=4, user_buckets=4,
                                             dropout=0.0, num_items=40))
    module = RecommenderModule(model, split, 40, TrainingConfig())
    inputs, targets = torch.tensor([[0, 1, 2]] * 2), torch.tensor([[1, 2, 3]] * 2)
    loss = module.training_step([inputs, targets, torch.tensor([1, 2])], 0)
    loss.backward()
    grad = model.backbone.user.weight.grad  # (4, D): users 1 and 2 hash to rows 1 and 2
    assert grad[[1, 2]].abs().sum() > 0 and grad[[0, 3]].abs().sum() == 0
    _, scores = recommend_batch(model.eval(), split, np.array([0, 1]), "valid", 10, 40)
    assert not torch.equal(scores[0], scores[1])
