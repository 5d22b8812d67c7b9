"""Users' rating histories as item sequences, and the evaluation splits.

Order: each user's ratings by timestamp; ratings at the same second keep the order of their rows in the
ratings file (a stable sort). MovieLens stores many ratings per second (in ML-100K, for almost half the users, their
last two ratings share one second), so this rule decides which movie is held out. Both sources of
each release keep GroupLens's row order (the RecBole copies of ML-100K and ML-1M list ratings exactly as
u.data and ratings.dat do), so both give the same split. Ordering ties by movie_id instead would hold out
systematically later-added, less popular movies (popularity would look much worse than it is).

Items are numbered 0..N-1 in the order of the movies table ("item index"); `Catalogue` maps both ways.

Splits (every user needs >= 3 ratings; users with fewer are skipped and counted):
- leave-one-out: last item -> test, second-to-last -> validation, the rest -> training.
- cold-start: a seeded random tenth of the catalogue is "cold": those movies are removed from every
  user's sequence except where one is the user's last rating. Then leave-one-out on what remains: the
  test target is the last rating (cold or not), validation and training hold warm movies only, so no
  model ever trains on, or reads in a history, a cold movie. Users with a cold test target are the cold
  slice of the evaluation (`SequenceSplit.cold_items`); a cold movie can be recommended only by a model
  that scores movies from content (their SIDs and text embeddings come from text alone).
- temporal: a global cut time (the `quantile` of all timestamps). Training = everything before the cut.
  Test users are those with >= 2 ratings before and >= 1 after: test target = their first rating after
  the cut, test input = all their ratings before it; validation target = their last rating before the
  cut. Leave-one-out lets training see ratings made after other users' test ratings; this split doesn't.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)
SPLITS = ("leave-one-out", "temporal", "cold-start")
HeldOut = Literal["valid", "test"]  # which held-out item a ranking is for
HELD_OUT = ("valid", "test")
COLD_FRACTION, COLD_SEED = 0.1, 0  # the cold-start split's share of cold movies, and the seed that draws them


@dataclass(frozen=True)
class Catalogue:
    movie_ids: np.ndarray  # (N,) movie_id of each item index

    @property
    def size(self) -> int:
        return len(self.movie_ids)

    def index_of(self, movie_ids: np.ndarray) -> np.ndarray:
        """movie_id -> item index; raises on ids outside the catalogue."""
        position = pd.Index(self.movie_ids).get_indexer(np.asarray(movie_ids))
        if (position < 0).any():
            unknown = np.asarray(movie_ids)[position < 0][:5].tolist()
            raise ValueError(f"ratings name movie ids that are not in the catalogue: {unknown}")
        return position.astype(np.int64)


@dataclass
class SequenceSplit:
    """Per evaluated user: training sequence, validation target, test target (item indices).

    Inputs for validation: `train[u]`; inputs for test: `train[u] + [valid_target[u]]` (leave-one-out) or
    all ratings before the cut (temporal) - use `test_inputs(u)` rather than rebuilding it.
    `extra_train` holds sequences used only for training (temporal split: users without a test item).
    """

    name: str
    user_ids: np.ndarray  # (U,)
    train: list[np.ndarray]  # U arrays of item indices, chronological
    valid_target: np.ndarray  # (U,)
    test_target: np.ndarray  # (U,)
    extra_train: list[np.ndarray]
    skipped_users: int
    extra_train_users: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # owners of extra_train
    cold_items: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))  # cold-start split's cold movies

    def cold_target(self) -> np.ndarray:
        """(U,) True where the user's test target is a cold movie (all False outside the cold-start split)."""
        return np.isin(self.test_target, self.cold_items)

    def valid_inputs(self, u: int) -> np.ndarray:
        return self.train[u]

    def test_inputs(self, u: int) -> np.ndarray:
        return np.append(self.train[u], self.valid_target[u])

    def training_sequences(self) -> list[np.ndarray]:
        """Everything a model may learn from: every evaluated user's training part plus extra_train."""
        return [*self.train, *self.extra_train]

    def training_users(self) -> np.ndarray:
        """The user id of each of `training_sequences()`, in the same order (for a hashed user token)."""
        return np.concatenate([self.user_ids, self.extra_train_users]).astype(np.int64)


def chronological(ratings: pd.DataFrame, catalogue: Catalogue, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """ratings sorted by (user_id, timestamp), ties in file order, with an `item` column of item indices
    (and the columns named in `keep`, e.g. "rating").

    A user who rated a movie more than once keeps only the last of those ratings (a re-rating, or a
    duplicated row): otherwise a held-out movie could sit in the user's own history, where every model
    is barred from recommending it. How many rows were dropped is logged."""
    frame = ratings[["user_id", "movie_id", "timestamp", *keep]].copy()
    frame["item"] = catalogue.index_of(frame["movie_id"].to_numpy())
    frame = frame.sort_values(["user_id", "timestamp"], kind="stable", ignore_index=True)
    repeated = frame.duplicated(["user_id", "item"], keep="last")
    if repeated.any():
        log.warning("%d ratings re-rate a movie the same user rated before (or repeat a row): each user keeps "
                    "only the last rating of a movie", int(repeated.sum()))
        frame = frame[~repeated].reset_index(drop=True)
    return frame


def _per_user(frame: pd.DataFrame) -> tuple[np.ndarray, list[np.ndarray]]:
    users, starts = np.unique(frame["user_id"].to_numpy(), return_index=True)
    return users, np.split(frame["item"].to_numpy(), starts[1:])


def leave_one_out_sequences(users: np.ndarray, sequences: list[np.ndarray]) -> dict:
    """SequenceSplit fields of a leave-one-out split of per-user chronological sequences."""
    keep = np.array([len(s) >= 3 for s in sequences], dtype=bool)
    kept = [s for s, k in zip(sequences, keep, strict=True) if k]
    return dict(
        name="leave-one-out", user_ids=users[keep], train=[s[:-2] for s in kept],
        valid_target=np.array([s[-2] for s in kept], dtype=np.int64),
        test_target=np.array([s[-1] for s in kept], dtype=np.int64),
        extra_train=[], skipped_users=int((~keep).sum()),
    )


def leave_one_out(ratings: pd.DataFrame, catalogue: Catalogue) -> SequenceSplit:
    return SequenceSplit(**leave_one_out_sequences(*_per_user(chronological(ratings, catalogue))))


def cold_start(ratings: pd.DataFrame, catalogue: Catalogue, fraction: float = COLD_FRACTION,
               seed: int = COLD_SEED) -> SequenceSplit:
    if not 0 < fraction < 1:
        raise ValueError(f"cold-start fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(catalogue.size, max(1, round(fraction * catalogue.size)), replace=False))
    users, sequences = _per_user(chronological(ratings, catalogue))
    is_cold = np.zeros(catalogue.size, dtype=bool)
    is_cold[cold] = True
    kept = [np.append(s[:-1][~is_cold[s[:-1]]], s[-1]) for s in sequences]  # cold only as the last rating
    loo = leave_one_out_sequences(users, kept)
    return SequenceSplit(**{**loo, "name": "cold-start", "cold_items": cold.astype(np.int64)})


def temporal(ratings: pd.DataFrame, catalogue: Catalogue, quantile: float = 0.9) -> SequenceSplit:
    if not 0 < quantile < 1:
        raise ValueError(f"temporal split quantile must be in (0, 1), got {quantile}")
    frame = chronological(ratings, catalogue)
    cut = int(np.quantile(frame["timestamp"].to_numpy(), quantile))
    before, after = frame[frame["timestamp"] < cut], frame[frame["timestamp"] >= cut]
    if before.empty or after.empty:
        raise ValueError(f"temporal split: every rating falls on one side of the cut time {cut} (the ratings' "
                         f"timestamps are {'all equal' if frame['timestamp'].nunique() == 1 else 'too few'}); "
                         f"use --split leave-one-out")
    users_before, seq_before = _per_user(before)
    first_after = after.groupby("user_id", sort=True)["item"].first()
    eligible = np.array([len(s) >= 2 for s in seq_before], dtype=bool) & np.isin(users_before, first_after.index)
    test_users = users_before[eligible]
    tested = [s for s, e in zip(seq_before, eligible, strict=True) if e]
    return SequenceSplit(
        name="temporal", user_ids=test_users, train=[s[:-1] for s in tested],
        valid_target=np.array([s[-1] for s in tested], dtype=np.int64),
        test_target=first_after.loc[test_users].to_numpy().astype(np.int64),
        extra_train=[s for s, e in zip(seq_before, eligible, strict=True) if not e and len(s) >= 2],
        skipped_users=int(frame["user_id"].nunique() - len(test_users)),
        extra_train_users=users_before[~eligible & np.array([len(s) >= 2 for s in seq_before], dtype=bool)],
    )


def make_split(name: str, ratings: pd.DataFrame, catalogue: Catalogue) -> SequenceSplit:
    if name == "leave-one-out":
        return leave_one_out(ratings, catalogue)
    if name == "temporal":
        return temporal(ratings, catalogue)
    if name == "cold-start":
        return cold_start(ratings, catalogue)
    raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")


def stage_inputs(split: SequenceSplit, stage: HeldOut) -> list[np.ndarray]:
    """Each evaluated user's input history for a stage: valid_inputs(u) or test_inputs(u)."""
    if stage == "valid":
        return [split.valid_inputs(u) for u in range(len(split.user_ids))]
    if stage == "test":
        return [split.test_inputs(u) for u in range(len(split.user_ids))]
    raise ValueError(f"unknown stage {stage!r}; choose one of {HELD_OUT}")


def stage_targets(split: SequenceSplit, stage: HeldOut) -> np.ndarray:
    """Each evaluated user's held-out item for a stage: valid_target or test_target."""
    if stage not in HELD_OUT:
        raise ValueError(f"unknown stage {stage!r}; choose one of {HELD_OUT}")
    return split.valid_target if stage == "valid" else split.test_target
