"""Sequences and splits: the tie rule, leave-one-out targets, and no leakage of held-out items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.splits import Catalogue, chronological, leave_one_out, make_split, temporal

# item index order deliberately differs from movie_id order, so a tie rule on the index would show
CATALOGUE = Catalogue(np.array([30, 10, 20, 40, 50]))


def ratings(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "movie_id", "timestamp"])
    return frame.assign(rating=np.float32(4.0))


def random_ratings(rng, n_users: int = 40, n_movies: int = 60) -> tuple[pd.DataFrame, Catalogue]:
    """Each user rates distinct movies, at few distinct seconds so that ties are common."""
    catalogue = Catalogue(rng.permutation(np.arange(1000, 1000 + n_movies)))
    rows = []
    for user in range(1, n_users + 1):
        movies = rng.choice(catalogue.movie_ids, size=rng.integers(1, 15), replace=False)
        times = rng.integers(0, 8, size=len(movies)) * 100 + user
        rows += [(user, m, t) for m, t in zip(movies, times, strict=True)]
    return ratings(rows).sample(frac=1.0, random_state=0), catalogue


def test_ties_keep_file_order():
    rows = [(1, 40, 5), (1, 20, 9), (1, 30, 9), (1, 10, 9)]  # three ratings in the same last second
    for order, expected in ((rows, [40, 20, 30, 10]), ([rows[0], *rows[:0:-1]], [40, 10, 30, 20])):
        frame = chronological(ratings(order), CATALOGUE)
        assert frame["movie_id"].tolist() == expected
        split = leave_one_out(ratings(order), CATALOGUE)
        assert CATALOGUE.movie_ids[split.test_target].tolist() == expected[-1:]
        assert CATALOGUE.movie_ids[split.valid_target].tolist() == expected[-2:-1]
        assert CATALOGUE.movie_ids[split.train[0]].tolist() == expected[:2]


def test_earlier_timestamps_come_first_whatever_the_file_order():
    rows = [(1, 40, 9), (1, 20, 3), (1, 30, 5)]
    assert chronological(ratings(rows), CATALOGUE)["movie_id"].tolist() == [20, 30, 40]


def test_leave_one_out_targets_and_skipped_users():
    rows = [(1, 10, 1), (1, 20, 2), (1, 30, 3), (1, 40, 4), (2, 50, 1), (2, 10, 2), (3, 20, 7), (3, 30, 8),
            (3, 10, 9)]
    split = leave_one_out(ratings(rows), CATALOGUE)
    assert split.user_ids.tolist() == [1, 3] and split.skipped_users == 1
    movie = CATALOGUE.movie_ids
    assert movie[split.test_target].tolist() == [40, 10]
    assert movie[split.valid_target].tolist() == [30, 30]
    assert [movie[t].tolist() for t in split.train] == [[10, 20], [20]]
    assert movie[split.test_inputs(0)].tolist() == [10, 20, 30]
    assert split.training_sequences() == split.train


def assert_no_leakage(split) -> None:
    for u in range(len(split.user_ids)):
        test = split.test_target[u]
        assert test not in split.train[u]
        assert test != split.valid_target[u]
        assert test not in split.valid_inputs(u)
        assert test not in split.test_inputs(u)
        assert split.valid_target[u] not in split.valid_inputs(u)


@pytest.mark.parametrize("name", ["leave-one-out", "temporal"])
def test_no_leakage(rng, name):
    frame, catalogue = random_ratings(rng)
    split = make_split(name, frame, catalogue)
    assert len(split.user_ids) > 5
    assert_no_leakage(split)


def test_temporal_split_respects_the_cut(rng):
    frame, catalogue = random_ratings(rng)
    split = temporal(frame, catalogue, quantile=0.7)
    assert len(split.user_ids) > 5
    cut = int(np.quantile(frame["timestamp"], 0.7))
    stamp = {(u, i): t for u, i, t in zip(frame["user_id"], catalogue.index_of(frame["movie_id"].to_numpy()),
                                          frame["timestamp"], strict=True)}
    for u, user in enumerate(split.user_ids):
        before = [stamp[user, i] for i in split.test_inputs(u)]
        assert max(before) < cut
        assert stamp[user, split.test_target[u]] >= cut
        after = frame[(frame["user_id"] == user) & (frame["timestamp"] >= cut)]
        assert stamp[user, split.test_target[u]] == after["timestamp"].min()  # the first rating after
    # extra_train carries no user ids, so compare item counts: everything a model trains on (plus the
    # validation targets) must be drawn from the ratings made before the cut
    trained = np.concatenate([*split.training_sequences(), split.valid_target])
    before_cut = catalogue.index_of(frame.loc[frame["timestamp"] < cut, "movie_id"].to_numpy())
    n = catalogue.size
    assert (np.bincount(trained, minlength=n) <= np.bincount(before_cut, minlength=n)).all()
    assert len(split.extra_train) > 0


def test_unknown_movie_ids_and_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"not in the catalogue: \[99\]"):
        leave_one_out(ratings([(1, 10, 1), (1, 99, 2), (1, 20, 3)]), CATALOGUE)
    with pytest.raises(ValueError, match="quantile"):
        temporal(ratings([(1, 10, 1)]), CATALOGUE, quantile=1.0)
    with pytest.raises(ValueError, match="unknown split"):
        make_split("random", ratings([(1, 10, 1)]), CATALOGUE)


def test_a_movie_rated_twice_keeps_its_last_rating_and_never_sits_in_its_own_history(caplog):
    """Every row twice, and a last rating that re-rates an earlier movie: no held-out movie may be in the
    user's history, where every model is barred from recommending it (issue 14, defect 1)."""
    import logging

    from recsys.data.splits import Catalogue, leave_one_out

    rows = [(1, m, 4, t) for t, m in enumerate([10, 11, 12, 13, 14])] + [(2, m, 3, t) for t, m in
                                                                         enumerate([10, 12, 14, 11, 10])]
    ratings = pd.DataFrame(rows * 2, columns=["user_id", "movie_id", "rating", "timestamp"])
    with caplog.at_level(logging.WARNING):
        split = leave_one_out(ratings, Catalogue(np.arange(10, 15)))
    assert "each user keeps only the last rating" in caplog.text
    assert split.train[0].tolist() == [0, 1, 2] and split.valid_target[0] == 3 and split.test_target[0] == 4
    # user 2: 10, 12, 14, 11, 10 -> the first 10 is dropped (re-rated last): 12, 14 | 11 | 10
    assert split.train[1].tolist() == [2, 4] and split.valid_target[1] == 1 and split.test_target[1] == 0
    for u in range(2):
        assert split.test_target[u] not in split.test_inputs(u) and split.valid_target[u] not in split.train[u]
