"""Write a synthetic MovieLens release shaped like ML-32M, in the real ml-32m CSV format.

    .venv/bin/python bench/synthetic_movielens.py --out data/synthetic/ml-32m-shaped   # 87,585 x 200,948 x 32M

Same counts as ML-32M by default (87,585 movies, 200,948 users, 32,000,204 ratings), and the shapes that
matter for speed and memory: movie popularity is Zipf-like (p ~ 1 / rank^ZIPF_EXPONENT), users have at
least 20 ratings and log-normal history lengths (mean = ratings / users, long tail), each (user, movie)
pair occurs once, movie ids are sparse (as in the real files, up to ~3x the movie count), titles are 1-3
common or made-up words and a year, ratings are
half stars 0.5-5.0 and timestamps increase within a user. Files: ratings.csv, movies.csv (quoted titles
where they hold commas, `|`-separated genres), tags.csv. Nothing here is real MovieLens data.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

GENRES = ["Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
WORDS = ["night", "love", "city", "dead", "last", "man", "girl", "star", "war", "house", "dream", "blood", "road",
         "king", "secret", "summer", "shadow", "river", "ghost", "heart", "little", "american", "black", "time"]
ZIPF_EXPONENT = 1.0
MIN_RATINGS = 20
START, END = 789_652_009, 1_697_164_147  # first and last timestamps of ML-32M's time span (1995-2023)


def invented_words(count: int, rng: np.random.Generator) -> np.ndarray:
    """Pronounceable made-up words ("dorami", "tesk") so that titles are as varied as real ones."""
    syllables = np.array([c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"])
    parts = syllables[rng.integers(0, len(syllables), (count, 3))]
    lengths = rng.integers(1, 4, count)
    return np.array(["".join(p[:n]) for p, n in zip(parts, lengths, strict=True)])


def movie_table(n: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = np.sort(rng.choice(np.arange(1, 3 * n + 1), n, replace=False)).astype(np.int32)
    vocabulary = np.concatenate([WORDS, invented_words(5_000, rng)])
    words = vocabulary[rng.integers(0, len(vocabulary), (n, 3))]
    length = rng.integers(1, 4, n)
    years = rng.integers(1902, 2024, n)
    # One title in twenty is written as MovieLens writes "The ...": "Shadow River, The (1987)" - a comma.
    article = np.where(rng.random(n) < 0.05, ", The", "")
    titles = [" ".join(w[:k]).title() + f"{art} ({y})"
              for w, k, art, y in zip(words, length, article, years, strict=True)]
    counts = rng.integers(1, 4, n)
    genres = ["|".join(rng.choice(GENRES, c, replace=False)) for c in counts]
    return pd.DataFrame({"movieId": ids, "title": titles, "genres": genres})


def history_lengths(users: int, ratings: int, movies: int, rng: np.random.Generator) -> np.ndarray:
    """Log-normal lengths >= MIN_RATINGS, each at most a third of the catalogue, adding up to `ratings`."""
    raw = rng.lognormal(mean=0.0, sigma=1.1, size=users)
    extra = raw / raw.sum() * (ratings - MIN_RATINGS * users)
    lengths = np.minimum(MIN_RATINGS + np.floor(extra).astype(np.int64), max(MIN_RATINGS, movies // 3))
    while (short := ratings - lengths.sum()) > 0:  # floor and the cap lost some: spread them over the rest
        room = np.flatnonzero(lengths < max(MIN_RATINGS, movies // 3))
        lengths[room[:short]] += 1
    return lengths


def draw_pairs(lengths: np.ndarray, n_movies: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user index, movie index) pairs, unique, lengths[u] per user, movies Zipf-distributed."""
    weights = 1.0 / np.arange(1, n_movies + 1) ** ZIPF_EXPONENT
    popularity_rank = rng.permutation(n_movies)  # which movie holds which popularity rank
    users = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    movies = popularity_rank[rng.choice(n_movies, len(users), p=weights / weights.sum())].astype(np.int32)
    for _ in range(50):  # re-draw duplicate (user, movie) pairs until none is left
        duplicate = pd.DataFrame({"u": users, "m": movies}).duplicated().to_numpy()
        if not duplicate.any():
            return users, movies
        # uniform re-draws: a user who already has the popular movies gets a less popular one
        movies[duplicate] = rng.integers(0, n_movies, int(duplicate.sum()), dtype=np.int32)
    raise RuntimeError("could not make (user, movie) pairs unique")


def timestamps(lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Increasing within each user: a start in the span, then exponential gaps (mean one day)."""
    starts = rng.integers(START, END - 86_400 * 400, len(lengths))
    gaps = rng.exponential(86_400.0, int(lengths.sum()))
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    gaps[first] = 0
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], lengths)
    return (np.repeat(starts, lengths) + within).astype(np.int64)


def write_csv(frame: pd.DataFrame, path: Path, quote_strings: bool = False) -> None:
    """pyarrow's fast CSV writer, with MovieLens's unquoted header; to a temporary name, then renamed."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(",".join(frame.columns) + "\n")
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed" if quote_strings else "none")
    with tmp.open("ab") as sink:
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), sink, write_options=options)
    tmp.replace(path)


def generate(out: Path, movies: int, users: int, ratings: int, tags: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    catalogue = movie_table(movies, rng)
    write_csv(catalogue, out / "movies.csv", quote_strings=True)
    lengths = history_lengths(users, ratings, movies, rng)
    user_index, movie_index = draw_pairs(lengths, movies, rng)
    frame = pd.DataFrame({
        "userId": user_index + 1,
        "movieId": catalogue["movieId"].to_numpy()[movie_index],
        "rating": (rng.integers(1, 11, len(user_index)) / 2).astype(np.float32),
        "timestamp": timestamps(lengths, rng),
    })
    write_csv(frame, out / "ratings.csv")
    pick = rng.integers(0, len(frame), tags)
    tag_frame = pd.DataFrame({"userId": frame["userId"].to_numpy()[pick], "movieId": frame["movieId"].to_numpy()[pick],
                              "tag": np.array(WORDS)[rng.integers(0, len(WORDS), tags)],
                              "timestamp": frame["timestamp"].to_numpy()[pick]})
    write_csv(tag_frame, out / "tags.csv", quote_strings=True)
    return {"seconds": round(time.perf_counter() - start, 1), "movies": movies, "users": users,
            "ratings": len(frame), "tags": tags, "max_history": int(lengths.max()),
            "median_history": float(np.median(lengths))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--movies", type=int, default=87_585)
    parser.add_argument("--users", type=int, default=200_948)
    parser.add_argument("--ratings", type=int, default=32_000_204)
    parser.add_argument("--tags", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.ratings < MIN_RATINGS * args.users or args.ratings > args.users * args.movies:
        parser.error(f"--ratings must be between {MIN_RATINGS} x users and users x movies")
    print(generate(args.out, args.movies, args.users, args.ratings, args.tags, args.seed))


if __name__ == "__main__":
    main()
