"""The one text template that turns a movie into the sentence the text encoder reads.

    {title}. Genres: {g1}, {g2}. Tags: {t1}, {t2}. Directed by {director}. Starring {s1}, {s2}. Plot: {plot}

`title` is MovieLens's own form with the year, e.g. ``Toy Story (1995)``. Each later part appears only
when the movie has it: ML-100K and ML-1M have title, year and genres; the CSV releases add user tags
(the 10 most frequent); an enrichment file adds director, stars and a plot summary.
Example: ``Toy Story (1995). Genres: Animation, Children's, Comedy.``
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

TAGS_IN_TEXT = 10  # of the tags a movie has (most applied first), the ones its text names
MAX_STARS = 5


def as_list(value: object) -> list[str]:
    """A list-like cell (list, array, "a, b" string, None or NaN) as a list of strings."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]  # type: ignore[union-attr]


def _present(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def movie_text(
    title: str,
    genres: Sequence[str] = (),
    tags: Sequence[str] = (),
    director: str | None = None,
    stars: Sequence[str] = (),
    plot: str | None = None,
) -> str:
    """The template above, for one movie."""
    if not _present(title):
        raise ValueError(f"a movie needs a non-empty title, got {title!r}")
    parts = [title.strip() + "."]
    if genres:
        parts.append(f"Genres: {', '.join(genres)}.")
    if tags:
        parts.append(f"Tags: {', '.join(list(tags)[:TAGS_IN_TEXT])}.")
    if _present(director):
        parts.append(f"Directed by {director.strip()}.")
    if stars:
        parts.append(f"Starring {', '.join(list(stars)[:MAX_STARS])}.")
    if _present(plot):
        parts.append(f"Plot: {plot.strip()}")
    return " ".join(parts)


def movie_texts(movies: pd.DataFrame) -> list[str]:
    """One text per row of a movies table (columns title, genres, and optionally tags, director, stars,
    plot_summary)."""
    def column(name: str) -> Sequence[object]:
        return movies[name].tolist() if name in movies else [None] * len(movies)

    return [
        movie_text(title, as_list(genres), as_list(tags), director if _present(director) else None,
                   as_list(stars), plot if _present(plot) else None)
        for title, genres, tags, director, stars, plot in zip(
            movies["title"].tolist(), column("genres"), column("tags"), column("director"),
            column("stars"), column("plot_summary"), strict=True,
        )
    ]
