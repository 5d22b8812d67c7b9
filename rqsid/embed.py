"""Text → embedding through an incremental on-disk cache, so a re-run encodes only what changed.

Encoding a catalogue with a transformer is the slowest step before Semantic IDs can be built. Embeddings are
kept in a parquet cache keyed by item id and text hash, and tagged with the model's identity; the encoder
itself is found (offline if need be) by `rqsid.encoder`, and loaded only when something must be encoded.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rqsid.encoder import DEFAULT_MODEL, load_encoder, model_identity
from rqsid.io import atomic_write

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "DEFAULT_MODEL",
    "CachedEmbeddings",
    "encode_with_cache",
    "encode_with_cache_stats",
    "load_encoder",
    "model_identity",
    "text_sha256",
]

logger = logging.getLogger(__name__)

_CACHE_FORMAT = "1"
_META_MODEL = b"rqsid.model"
_META_IDENTITY = b"rqsid.model_identity"
_META_FORMAT = b"rqsid.cache_format"


class CachedEmbeddings(NamedTuple):
    """Embeddings in the caller's id order, plus how many were computed now vs read from the cache."""

    embeddings: np.ndarray
    n_encoded: int
    n_reused: int


# ---------------------------------------------------------------------------------------------------
# Embedding cache
# ---------------------------------------------------------------------------------------------------


@dataclass
class _CacheRows:
    """The cache file's content in memory; ``embedding`` is (n, d) float32."""

    item_id: np.ndarray
    text: list[str]
    text_hash: list[str]
    embedding: np.ndarray

    @classmethod
    def empty(cls) -> _CacheRows:
        return cls(np.empty(0, np.int64), [], [], np.empty((0, 0), np.float32))

    def row_of(self) -> dict[int, int]:
        return {int(item): row for row, item in enumerate(self.item_id)}

    def upsert(self, ids: np.ndarray, texts: list[str], hashes: list[str], emb: np.ndarray) -> _CacheRows:
        """Replace rows whose id exists, append the rest (existing order kept, so files diff well)."""
        if len(self.item_id) and self.embedding.shape[1] != emb.shape[1]:
            raise ValueError(
                f"embedding width changed: cache {self.embedding.shape[1]}, model {emb.shape[1]}"
            )
        row_of = self.row_of()
        item_id, text, text_hash = self.item_id.copy(), list(self.text), list(self.text_hash)
        embedding = self.embedding if len(self.item_id) else np.empty((0, emb.shape[1]), np.float32)
        new = [k for k, item in enumerate(ids) if int(item) not in row_of]
        old = [k for k, item in enumerate(ids) if int(item) in row_of]
        embedding = np.concatenate([embedding, emb[new]])
        for k in old:
            row = row_of[int(ids[k])]
            text[row], text_hash[row], embedding[row] = texts[k], hashes[k], emb[k]
        item_id = np.concatenate([item_id, ids[new].astype(np.int64)])
        return _CacheRows(
            item_id, text + [texts[k] for k in new], text_hash + [hashes[k] for k in new], embedding
        )


def text_sha256(text: str) -> str:
    """The cache key of a text: hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_with_cache(ids: Sequence[int], texts: Sequence[str], **options: Any) -> np.ndarray:
    """Float32 (N, D) unit-norm embeddings, row i for ``ids[i]``: :func:`encode_with_cache_stats` with the
    same keyword options (cache_path required), without its counts."""
    return encode_with_cache_stats(ids, texts, **options).embeddings


def encode_with_cache_stats(
    ids: Sequence[int],
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    cache_path: Path,
    batch_size: int = 64,
    device: str | Sequence[str] | None = None,
    models_dir: Path | None = None,
    encoder: SentenceTransformer | None = None,
) -> CachedEmbeddings:
    """Embed ``texts`` through the parquet cache at ``cache_path``, encoding only new or changed items.

    A cache row is reused when its ``item_id`` and text sha256 match and the file was written by the same
    model (:func:`model_identity`); otherwise the item is re-encoded. The encoder is loaded only if
    something needs encoding. ``encoder``, if given, must be the model named by ``model``; the cache is
    rewritten atomically, and only when something changed. Items in the cache but not in ``ids`` are kept.
    ``device`` is one device ("cuda", "cpu") or several (["cuda:0", "cuda:1"], or ["cpu"] * 4): with
    several, sentence-transformers' own multi-process pool encodes with one process per entry.
    """
    id_array = _validate(ids, texts)
    identity = model_identity(model)
    cache = _read_cache(Path(cache_path), identity)
    hashes = [text_sha256(text) for text in texts]
    row_of = cache.row_of()
    stale = [
        k
        for k, (item, digest) in enumerate(zip(id_array.tolist(), hashes, strict=True))
        if item not in row_of or cache.text_hash[row_of[item]] != digest
    ]
    if stale:
        pool = [str(d) for d in device] if device is not None and not isinstance(device, str) else None
        if encoder is None:
            encoder = load_encoder(model, device=None if pool else device, models_dir=models_dir)
        fresh = _encode(encoder, [texts[k] for k in stale], batch_size, pool if pool and len(pool) > 1 else None)
        cache = cache.upsert(id_array[stale], [texts[k] for k in stale], [hashes[k] for k in stale], fresh)
        _write_cache(Path(cache_path), cache, model, identity)
        row_of = cache.row_of()
    logger.info("embeddings: %d encoded, %d reused from %s", len(stale), len(ids) - len(stale), cache_path)
    rows = [row_of[item] for item in id_array.tolist()]
    return CachedEmbeddings(cache.embedding[rows], len(stale), len(ids) - len(stale))


def _validate(ids: Sequence[int], texts: Sequence[str]) -> np.ndarray:
    """Fail early with the offending ids: a bad catalogue is cheaper to fix before a long encode."""
    if len(ids) != len(texts):
        raise ValueError(f"ids and texts differ in length: {len(ids)} ids, {len(texts)} texts")
    if len(ids) == 0:
        raise ValueError("ids is empty: nothing to embed")
    id_array = np.asarray(ids)
    if id_array.ndim != 1 or id_array.dtype.kind not in "iu":
        raise ValueError(f"ids must be a 1-d sequence of integers, got dtype {id_array.dtype}")
    unique, counts = np.unique(id_array, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"ids are not unique; duplicated: {unique[counts > 1][:10].tolist()}")
    empty = [
        int(item)
        for item, text in zip(id_array, texts, strict=True)
        if not isinstance(text, str) or not text.strip()
    ]
    if empty:
        raise ValueError(f"{len(empty)} texts are empty or not strings, e.g. for ids {empty[:10]}")
    return id_array.astype(np.int64)


def _encode(encoder: SentenceTransformer, texts: list[str], batch_size: int,
            devices: list[str] | None = None) -> np.ndarray:
    """Encode (one process per entry of `devices`, if given), L2-normalised by sentence-transformers, in
    float32; non-finite or zero vectors are errors, not silent garbage."""
    raw = encoder.encode(texts, batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True,
                         normalize_embeddings=True, device=devices)
    emb = np.asarray(raw, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"encoder returned shape {emb.shape} for {len(texts)} texts")
    norms = np.linalg.norm(emb, axis=1)
    bad = ~np.isfinite(emb).all(axis=1) | ~(np.abs(norms - 1) < 1e-3)  # a zero vector stays zero
    if bad.any():
        rows = np.flatnonzero(bad)[:10].tolist()
        raise ValueError(f"encoder produced {int(bad.sum())} non-finite or zero embeddings, e.g. rows {rows}")
    return emb


def _read_cache(path: Path, identity: str) -> _CacheRows:
    """The cache's rows, or none when absent, unreadable, malformed or written by another model."""
    if not path.exists():
        return _CacheRows.empty()
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as error:
        logger.warning("embedding cache %s is unreadable (%s); re-encoding everything", path, error)
        return _CacheRows.empty()
    metadata = table.schema.metadata or {}
    cached_identity = metadata.get(_META_IDENTITY, b"").decode()
    if cached_identity != identity:
        logger.info(
            "embedding cache %s was written by model %r, not %r; ignoring it and re-encoding everything",
            path,
            cached_identity or "<unknown>",
            identity,
        )
        return _CacheRows.empty()
    try:
        return _rows_from_table(table)
    except (KeyError, ValueError, TypeError) as error:
        logger.warning("embedding cache %s is malformed (%s); re-encoding everything", path, error)
        return _CacheRows.empty()


def _rows_from_table(table: pa.Table) -> _CacheRows:
    column = table.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(column.type) or column.null_count:
        raise ValueError(f"embedding column has type {column.type} / nulls, expected fixed-size float lists")
    width = column.type.list_size
    embedding = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)
    return _CacheRows(
        item_id=table.column("item_id").to_numpy().astype(np.int64),
        text=table.column("text").to_pylist(),
        text_hash=table.column("text_hash").to_pylist(),
        embedding=embedding,
    )


def _write_cache(path: Path, rows: _CacheRows, model: str, identity: str) -> None:
    """Write atomically (see :mod:`rqsid.io`): readers never see a half-written cache."""
    width = rows.embedding.shape[1]
    flat = pa.array(np.ascontiguousarray(rows.embedding, dtype=np.float32).reshape(-1), pa.float32())
    table = pa.table(
        {
            "item_id": pa.array(rows.item_id, pa.int64()),
            "text": pa.array(rows.text, pa.string()),
            "text_hash": pa.array(rows.text_hash, pa.string()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, width),
        }
    ).replace_schema_metadata(
        {_META_MODEL: model.encode(), _META_IDENTITY: identity.encode(), _META_FORMAT: _CACHE_FORMAT.encode()}
    )
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))  # a fresh file: umask permissions kept
