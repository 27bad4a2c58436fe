"""Durable per-analysis state (ring buffers, baselines) so a restart does not start blind.

One `.npz` file per analysis in the state directory holding a flat dict of arrays; callers
namespace their keys (`buffer.values`, `topology.baseline`). Files are written atomically
(temporary file, fsync, rename, fsync of the directory): a crash leaves the old file or the new
one, never half of one. Loading never unpickles (`allow_pickle=False`) and never raises: a
missing, corrupt or incompatible file is logged and reported as None, and the caller starts
fresh.
"""

from __future__ import annotations

import logging
import re
import zipfile
from pathlib import Path

import numpy as np

from exporter.util import atomic_open

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_VERSION_KEY = "__aura_state_format__"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


class StateError(Exception):
    """State could not be written (bad name, bad array, file system error)."""


def _storable(key: str, value: np.ndarray) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:
        # Object arrays would need pickle; strings are stored as fixed-width unicode instead.
        try:
            if not all(isinstance(v, str) for v in arr.ravel().tolist()):
                raise TypeError
            arr = arr.astype(str) if arr.size else np.zeros(arr.shape, dtype="<U1")
        except TypeError:
            raise StateError(f"state key {key!r}: object arrays other than strings "
                             "cannot be stored") from None
    elif arr.dtype.kind == "S":
        arr = np.char.decode(arr, "utf-8")
    return arr


class StateStore:
    """Per-analysis state files in `state_dir` (created on first save)."""

    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)

    def path(self, analysis_name: str) -> Path:
        """The analysis' state file, `<state_dir>/<analysis_name>.npz`.

        Raises StateError for a name that is not letters, digits, `_` and `-` starting with a
        letter or `_` (the name becomes a file name).
        """
        if not _NAME_RE.fullmatch(analysis_name):
            # The name becomes a file name: refuse anything that could leave the directory.
            raise StateError(f"analysis name {analysis_name!r} is not usable as a state file")
        return self.state_dir / f"{analysis_name}.npz"

    def save(self, analysis_name: str, arrays: dict[str, np.ndarray]) -> None:
        """Replace the analysis' state with `arrays` atomically; raise StateError on failure."""
        target = self.path(analysis_name)
        if _VERSION_KEY in arrays:
            raise StateError(f"state key {_VERSION_KEY!r} is reserved")
        payload = {k: _storable(k, v) for k, v in arrays.items()}
        payload[_VERSION_KEY] = np.array([FORMAT_VERSION])
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with atomic_open(target, binary=True, permissions=0o600) as fh:
                np.savez(fh, allow_pickle=False, **payload)  # type: ignore[arg-type]
        except OSError as err:
            raise StateError(f"cannot write state {target}: {err.strerror or err}") from err

    def load(self, analysis_name: str) -> dict[str, np.ndarray] | None:
        """The saved arrays, or None when missing (logged at info: a first start) or corrupt
        or incompatible (a warning)."""
        try:
            target = self.path(analysis_name)
        except StateError as err:
            log.warning("msg=\"state not loaded\" analysis=%s reason=%r", analysis_name, str(err))
            return None
        if not target.exists():
            log.info("msg=\"no saved state; starting fresh\" analysis=%s file=%s",
                     analysis_name, target)
            return None
        try:
            with np.load(target, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
            log.warning("msg=\"state file unreadable; starting fresh\" analysis=%s file=%s "
                        "error=%r", analysis_name, target, str(err))
            return None
        version = arrays.pop(_VERSION_KEY, None)
        if version is None or version.shape != (1,) or int(version[0]) != FORMAT_VERSION:
            log.warning("msg=\"state file has another format; starting fresh\" analysis=%s "
                        "file=%s format=%s want=%d", analysis_name, target,
                        None if version is None else version.tolist(), FORMAT_VERSION)
            return None
        return arrays
