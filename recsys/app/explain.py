"""Recommendations, similar movies and text search on a finished run, each with a one-line reason.

- `recommend(run, user, model, k)`: the model's top-k for the user's whole history (every rating, so
  this is "what next", not the evaluation's held-out test), each with the SID prefix it shares with the
  history (and that prefix's label), or its dense / text similarity, or its popularity.
- `similar(run, title, k)`: movies sharing the longest SID prefix with a movie, beside its nearest
  neighbours in the text-embedding space (FAISS, inner product of unit vectors = cosine).
- `search(run, query, k)`: the query is encoded by the run's text model and quantized by its RQ-VAE,
  level by level among the codes that movies have (`rqsid.assign.quantize_within`), so it always lands
  on a branch of the SID tree; the movies down that branch, beside FAISS search of the same vector.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from recsys.data.collaborative import TextToFactors
from recsys.models import MODELS, Recommender
from recsys.models.ranking import build_index, faiss_topk_excluding
from recsys.runs.finished_run import FinishedRun, NotFoundError

SHOWN_MATCHES = 2  # history movies named in a reason


@dataclass
class Shared:
    """The longest SID prefix a movie shares with a set of movies (level 0 = nothing shared)."""

    level: int = 0
    prefix: str = ""
    label: str = ""
    with_titles: list[str] = field(default_factory=list)
    count: int = 0

    def sentence(self, whose: str = "your") -> str:
        if not self.level:
            return f"no SID prefix in common with {whose} movies"
        named = ", ".join(self.with_titles[:SHOWN_MATCHES])
        more = f" and {self.count - SHOWN_MATCHES} more" if self.count > SHOWN_MATCHES else ""
        return f"shares SID prefix {self.prefix} ({self.label}) with {named}{more}"


@dataclass
class Recommendation:
    rank: int
    movie: dict
    score: float
    reason: str
    shared: Shared


@dataclass
class Result:
    """What each command prints: the query, its context, and one or two ranked lists."""

    command: str
    query: dict
    lists: dict[str, list[Recommendation]]

    def to_json(self) -> dict:
        return asdict(self)


def shared_prefix(run: FinishedRun, item: int, others: np.ndarray) -> Shared:
    """Longest prefix of item's learned SID levels (not the collision token) shared with any of `others`."""
    others = np.asarray(others, dtype=np.int64)
    for level in range(run.sids.shape[1] - 1, 0, -1):
        match = others[(run.sids[others, :level] == run.sids[item, :level]).all(axis=1)]
        if len(match):
            prefix = "-".join(str(c) for c in run.sids[item, :level])
            recent_first = [str(run.movies["title"].iloc[i]) for i in match[::-1]]
            return Shared(level, prefix, run.label(run.sids[item, :level]), recent_first, len(match))
    return Shared()


def _ranked(run: FinishedRun, model: Recommender, history: np.ndarray, user_id: int,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """(k,) items and scores of one model for one history of item indices."""
    ranking = model.recommend([history], k, users=np.array([user_id]))
    return ranking.items[0], ranking.scores[0]


def recommend(run: FinishedRun, user_id: int, model: str = "sid-generative", k: int = 10,
              recent: int = 10) -> Result:
    if model not in MODELS:
        raise NotFoundError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    if k < 1:
        raise ValueError(f"-k must be >= 1, got {k}")
    history = run.history(user_id)
    items = history["item"].to_numpy()
    recommender = run.recommender(model)
    ranked, scores = _ranked(run, recommender, items, user_id, k)
    rows = []
    for rank, (item, score) in enumerate(zip(ranked, scores, strict=True), start=1):
        shared = shared_prefix(run, int(item), items)
        reason = recommender.reason(int(item), float(score), items, run)
        if recommender.explains_by_sid_prefix:
            reason = f"{shared.sentence()}; {reason}"
        rows.append(Recommendation(rank, run.describe(int(item)), float(score), reason, shared))
    watched = [{**run.describe(int(r.item)), "rating": float(r.rating), "timestamp": int(r.timestamp)}
               for r in history.tail(recent).itertuples()]
    query = {"user_id": user_id, "model": model, "history_length": len(items), "recent": watched[::-1]}
    return Result("recommend", query, {model: rows})


def _text_neighbours(run: FinishedRun, query: np.ndarray, exclude: np.ndarray, k: int) -> list[Recommendation]:
    """Nearest movies to a unit query vector (D,) in the text-embedding space, by FAISS inner product."""
    items, scores = faiss_topk_excluding(query[None].astype(np.float32), build_index(run.embeddings), [exclude], k)
    return [Recommendation(rank, run.describe(int(i)), float(s), f"text cosine {s:.2f}", Shared())
            for rank, (i, s) in enumerate(zip(items[0], scores[0], strict=True), start=1)]


def prefix_members(run: FinishedRun, codes: np.ndarray, exclude: int | None = None) -> tuple[int, np.ndarray]:
    """The longest prefix of `codes` that some movie (other than `exclude`) has: (its length, those movies)."""
    for level in range(len(codes), 0, -1):
        members = np.flatnonzero((run.sids[:, :level] == codes[:level]).all(axis=1))
        members = members[members != exclude] if exclude is not None else members
        if len(members):
            return level, members
    return 0, np.empty(0, dtype=np.int64)


def _by_prefix(run: FinishedRun, item_codes: np.ndarray, query: np.ndarray, k: int,
               exclude: int | None) -> list[Recommendation]:
    """Movies sharing the longest prefix first (then shorter ones), each group ordered by text cosine."""
    chosen: list[int] = []
    rows = []
    top_level, _ = prefix_members(run, item_codes, exclude)
    for level in range(top_level, 0, -1):
        _, members = prefix_members(run, item_codes[:level], exclude)
        fresh = [int(m) for m in members[np.argsort(-(run.embeddings[members] @ query), kind="stable")]
                 if m not in chosen]
        for item in fresh[: k - len(chosen)]:
            prefix = "-".join(str(c) for c in item_codes[:level])
            shared = Shared(level, prefix, run.label(item_codes[:level]), [], 0)
            cosine = float(run.embeddings[item] @ query)
            rows.append(Recommendation(len(chosen) + 1, run.describe(item), cosine,
                                       f"same SID prefix {prefix} ({shared.label}); text cosine {cosine:.2f}",
                                       shared))
            chosen.append(item)
        if len(chosen) >= k:
            break
    return rows


def similar(run: FinishedRun, title: str, k: int = 10) -> Result:
    item = run.find_movie(title)
    learned = run.sids[item, :-1]  # the collision token numbers movies; it says nothing about content
    query = run.embeddings[item]
    lists = {"sid-prefix": _by_prefix(run, learned, query, k, exclude=item),
             "text-embedding": _text_neighbours(run, query, np.array([item]), k)}
    labels = {"-".join(map(str, learned[:n])): run.label(learned[:n]) for n in (1, 2)}
    return Result("similar", {"title": title, "movie": run.describe(item), "prefix_labels": labels}, lists)


def query_input(vector: np.ndarray, input_dim: int, text_to_factors: TextToFactors | None) -> np.ndarray:
    """The quantizer's input for a text query's embedding (D,). A tokenizer that also read collaborative
    factors (`recsys.data.collaborative`) gets the factors the text predicts, as a movie nobody rated did,
    or zeros where the run filled such movies with zeros; one that read the factors alone needs the map."""
    if input_dim == len(vector):
        return vector
    if text_to_factors is not None:
        factors = text_to_factors(vector[None])[0]  # (dims,)
        return factors if input_dim == len(factors) else np.concatenate([vector, factors])
    if input_dim < len(vector):
        raise NotFoundError("this run's SIDs come from collaborative factors alone (--sid-collaborative-only) "
                            "with zero factors for unrated movies: a text query has no place in its tree; use a "
                            "run with --sid-unrated-factors text, or text SIDs (--sid-collaborative 0)")
    return np.pad(vector, (0, input_dim - len(vector)))


def search(run: FinishedRun, text: str, k: int = 10, encoder: torch.nn.Module | None = None) -> Result:
    """Movies for a free-text query: under its quantized SID prefix, beside text-embedding search."""
    from rqsid.assign import quantize_in_order, quantize_within
    from rqsid.encoder import load_encoder

    if not text.strip():
        raise NotFoundError("empty query: describe what you want to watch, e.g. 'robots in space, funny'")
    encoder = encoder or load_encoder(run.info.get("encoder") or "sentence-transformers/all-mpnet-base-v2")
    vector = encoder.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0].astype(np.float32)
    if vector.shape[0] != run.embeddings.shape[1]:
        raise ValueError(f"the encoder gives {vector.shape[0]}-d vectors but the run's movies are "
                         f"{run.embeddings.shape[1]}-d: use the run's encoder ({run.info.get('encoder')})")
    quantizer = run.quantizer()
    tokenized = query_input(vector, quantizer.config.input_dim, run.text_to_factors())
    free = quantize_in_order(quantizer, tokenized[None]).learned[0]
    codes = quantize_within(quantizer, tokenized, run.sids)
    query = {"text": text, "quantized_sid": "-".join(map(str, free)), "sid_path": "-".join(map(str, codes)),
             "prefix_label": run.label(codes)}
    lists = {"sid-prefix": _by_prefix(run, codes, vector, k, exclude=None),
             "text-embedding": _text_neighbours(run, vector, np.empty(0, np.int64), k)}
    return Result("search", query, lists)


def _movie_line(movie: dict) -> str:
    year = f" ({movie['year']})" if movie["year"] and f"({movie['year']})" not in movie["title"] else ""
    return f"{movie['title']}{year} | {', '.join(movie['genres'])} | SID {movie['sid']}"


LIST_TITLES = {"sid-prefix": "Sharing the longest SID prefix", "text-embedding": "Nearest by text embedding (FAISS)"}


def render_text(result: Result) -> str:
    """The human-readable form of a Result (the CLI's default output; --json gives `to_json`)."""
    q, lines = result.query, []
    if result.command == "recommend":
        lines.append(f"User {q['user_id']}: {q['history_length']} ratings; the {len(q['recent'])} most recent:")
        for m in q["recent"]:
            lines.append(f"  {m['rating']:g}★ {_movie_line(m)}")
    elif result.command == "similar":
        lines.append(f"{_movie_line(q['movie'])}")
        lines += [f"  prefix {p}: {label}" for p, label in q["prefix_labels"].items()]
    else:
        lines.append(f"Query {q['text']!r}: RQ-VAE code {q['quantized_sid']}; nearest branch with movies "
                     f"{q['sid_path']} ({q['prefix_label']})")
    for name, rows in result.lists.items():
        lines.append(f"\n{LIST_TITLES.get(name, f'Top {len(rows)} by {name}')}:")
        for r in rows:
            lines.append(f"{r.rank:>3}. {_movie_line(r.movie)}\n     {r.reason}")
    return "\n".join(lines)
