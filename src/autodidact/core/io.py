"""Atomic file writes and safe reads.

Every file autodidact writes goes to a temporary file in the destination directory, is flushed
and fsynced, then renamed over the target, so a crash or SIGKILL never leaves a half-written file.
"""

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from autodidact.core.errors import UserError


def write_error(path, exc):
    """The one-line UserError for an OSError met while writing `path`."""
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
        errno.ENOENT: "directory does not exist",
        errno.EDQUOT: "disk quota exceeded",
    }
    why = reasons.get(exc.errno, exc.strerror or str(exc))
    return UserError(f"{path}: cannot write: {why}")


def current_umask():
    """The process umask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success rename it to `path`, else remove it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        # mkstemp creates mode 0600; give the file the mode a plain open() would (umask applied).
        os.chmod(tmp, 0o666 & ~current_umask())
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise write_error(path, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data: bytes):
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serializable: {type(x).__name__}")


def write_npz(file_path, arrays: dict, compressed: bool = True):
    """Write a dict of arrays as an .npz with no pickled objects (not atomic: see atomic_savez)."""
    for k, v in arrays.items():
        if np.asarray(v).dtype == object:
            raise ValueError(f"refusing to write object array for field '{k}'")
    with open(file_path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def atomic_savez(path, arrays: dict, compressed: bool = True):
    """Write a dict of arrays as an .npz (no pickled objects) atomically."""
    with atomic_path(path) as tmp:
        write_npz(tmp, arrays, compressed)


def read_json(path, what="file"):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: {what} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: {what} is not valid JSON ({exc})") from None
