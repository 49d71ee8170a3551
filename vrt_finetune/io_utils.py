"""Atomic file writes: a crash never leaves a half-written file under the final name.

A full disk (or quota, or file-size limit) is reported as :class:`DiskFullError`, naming the
path, the free space and what the write needed, and leaves nothing half-written behind: every
writer of the toolkit (shards, index, cards, checkpoints, exports) writes a temporary sibling and
renames it only when complete, so a rerun after space is freed starts from what was finished.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""No space left, quota exceeded, file larger than the process may write."""


def human_bytes(n: float) -> str:
    """``1.5 GB``, ``820 kB``, ``12 B`` (decimal units, as ``df -H`` prints them)."""
    for scale, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f} B"


class DiskFullError(OSError):
    """A write that ran out of space; nothing half-written is left under the final name."""

    def __init__(self, path: str | Path, needed: int | None = None, detail: str = "") -> None:
        self.path, self.needed = Path(path), needed
        try:
            where = self.path if self.path.is_dir() else self.path.parent
            free: int | None = shutil.disk_usage(where).free
        except OSError:
            free = None
        self.free = free
        need = f" while writing about {human_bytes(needed)}" if needed else ""
        have = f" ({human_bytes(free)} free there)" if free is not None else ""
        super().__init__(
            errno.ENOSPC,
            f"{self.path}: no space left{need}{have}. {detail + ' ' if detail else ''}"
            "Free space on that disk (or write elsewhere) and run the same command again: "
            "work that was finished is kept and nothing half-written was left behind",
        )


def is_no_space(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is a full disk, a quota or a file-size limit."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS:
            return True
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return False


@contextmanager
def no_space_as(path: str | Path, needed: int | None = None, detail: str = "") -> Iterator[None]:
    """Turn a full-disk ``OSError`` inside the block into :class:`DiskFullError` for ``path``."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as err:
        if err.errno not in NO_SPACE_ERRNOS:
            raise
        raise DiskFullError(path, needed, detail) from err


@contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only on success.

    Raises:
        DiskFullError: the disk filled up (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with (
            no_space_as(path),
            os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f,
        ):
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)
