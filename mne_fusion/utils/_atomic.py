"""Atomic file writes: a reader sees the old file or the new one, never a partial one.

The content goes to a temporary file in the target's folder (the same file system),
which is flushed to disk and then renamed over the target with :func:`os.replace`.
A process killed mid-write, a full disk or an exception leaves the target as it was.
"""

import os
import uuid
from pathlib import Path


def write_atomic(fname, write):
    """Write ``fname`` through a temporary file in its folder, then rename it.

    Parameters
    ----------
    fname : path-like
        The file to write.
    write : callable
        ``write(tmp)`` writes the content to the path ``tmp``.
    """
    fname = Path(fname)
    # The temporary name keeps the final suffix: MNE checks file name endings.
    tmp = fname.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex}-{fname.name}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fid:
            os.fsync(fid.fileno())
        os.replace(tmp, fname)
    finally:
        tmp.unlink(missing_ok=True)
    _remove_orphans(fname)


def _remove_orphans(fname):
    """Remove the temporary files of writers of ``fname`` that were killed."""
    for tmp in fname.parent.glob(f".tmp-*-*-{fname.name}"):
        pid = tmp.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
