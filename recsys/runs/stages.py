"""Which stages of a run are finished, so that a re-run skips them, redoes stale ones, and `--force` all.

A stage's key is a sha256 over its settings (canonical JSON) and fingerprints of its inputs: a file's
sha256 for run artifacts, and (size, mtime) for the release's own files, which can be gigabytes. When a
stage finishes, `runs/<name>/stages/<stage>.json` records its key and outputs; it is written last and
atomically, so a stage without a record never finished, whatever files it left behind. Under DDP only
rank 0 writes; the other processes wait for its record before going on. A stage that
started records its key in `stages/<stage>.started.json`: an interrupted training resumes (`--resume`)
from its last Lightning checkpoint only if that key is the current one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from rqsid.io import file_digest, process_rank, write_json

log = logging.getLogger(__name__)


LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(run_dir: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold `run_dir` for this process: a second sidrec writing into it exits with a clear error naming the
    holder's pid, instead of interleaving two trainings' logs and checkpoints; with `wait`, it waits for the
    holder instead (for short work that may follow another's, such as a summary over seeds). The lock
    (flock on run_dir/.lock) goes with the process, however it ends. Under DDP only rank 0 takes it."""
    if process_rank() != 0:
        yield
        return
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--run {run_dir} is a file, not a run directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            if not wait:
                raise ValueError(f"{run_dir} is in use by another sidrec process (pid {holder}); wait for it to "
                                 f"finish or choose another --run") from None
            log.info("%s is in use by sidrec process %s; waiting for it", run_dir, holder)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fingerprint(path: Path) -> list:
    """What identifies an input: its name and sha256 (of every file, for a folder); a missing file is None."""
    path = Path(path)
    if path.is_dir():
        return sorted(fingerprint(p) for p in path.rglob("*") if p.is_file())
    if not path.exists():
        return [path.name, None]
    return [path.name, file_digest(path)]


@dataclass
class Stage:
    run_dir: Path
    name: str
    settings: dict
    inputs: list  # fingerprints (see `fingerprint`) or other JSON-ready facts
    outputs: tuple[str, ...]  # paths relative to run_dir
    promoted_to: Path | None = None  # a staging folder's stage: the run its outputs and record move into

    @property
    def key(self) -> str:
        text = json.dumps({"settings": self.settings, "inputs": self.inputs}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def record(self, suffix: str = "") -> Path:
        return Path(self.run_dir) / "stages" / f"{self.name}{suffix}.json"

    def _read(self, path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def is_done(self) -> bool:
        """Finished with the same key, and every output still there as it was written (same sha256: a
        truncated or edited output makes the stage run again)."""
        record = self._read(self.record())
        if not (record and record.get("key") == self.key):
            return False
        written = record.get("outputs")
        if not isinstance(written, dict):  # a record from before digests were kept: existence only
            return all((Path(self.run_dir) / out).exists() for out in self.outputs)
        for out in self.outputs:
            path = Path(self.run_dir) / out
            if not path.is_file() or written.get(out) != file_digest(path):
                log.info("%s: %s is missing or changed since the stage finished; it runs again", self.name, out)
                return False
        return True

    def can_resume(self) -> bool:
        """Started (not finished) with the same key: its checkpoints belong to this very stage."""
        record = self._read(self.record(".started"))
        return bool(record and record.get("key") == self.key)

    def start(self) -> None:
        if process_rank() == 0:
            self.record().unlink(missing_ok=True)
        write_json({"key": self.key, "settings": self.settings}, self.record(".started"))

    def finish(self, seconds: float) -> None:
        if process_rank() == 0:
            digests = {out: file_digest(Path(self.run_dir) / out) for out in self.outputs}
            write_json({"key": self.key, "outputs": digests, "seconds": round(seconds, 1)}, self.record())
            self.record(".started").unlink(missing_ok=True)
        else:  # rank 0 writes the artifacts: wait for them before the next stage reads them
            self.wait_until_done()

    def wait_until_done(self, timeout: float = 3600.0) -> None:
        deadline = time.monotonic() + timeout
        promoted = replace(self, run_dir=self.promoted_to, promoted_to=None) if self.promoted_to else None
        # rank 0 may promote a staged stage before this process sees its record in the staging folder
        while not (self.is_done() or (promoted is not None and promoted.is_done())):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.record()}: rank 0 did not finish stage {self.name!r} in {timeout:.0f} s")
            time.sleep(0.2)

    def finished_seconds(self) -> float:
        return float((self._read(self.record()) or {}).get("seconds", 0.0))


def table_digest(frame: pd.DataFrame) -> str:
    """sha256 of a table's content (pandas' row hashes, in order): a fingerprint of in-memory data."""
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()
