"""Embedded file store: files under the data dir, written atomically.

``atomic_write`` is also what the outbox uses: the bytes go to a temporary file in the
target's own directory, are flushed to disk, and replace the target in one ``os.replace``,
so a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path, PurePosixPath

from orderpipe.connectors.base import StoredFile
from orderpipe.errors import PermanentError, StepError, TransientError

# Errors that may go away by themselves (a full disk being cleaned, a busy network mount).
_TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT})


def os_error(what: str, exc: OSError) -> StepError:
    """Classify a filesystem error: retrying helps for a full disk, not for a permission problem."""
    reason = exc.strerror or exc.__class__.__name__
    cls = TransientError if exc.errno in _TRANSIENT_ERRNOS else PermanentError
    return cls(f"{what}: {reason}")


def atomic_write(path: Path, data: bytes) -> None:
    """Write data to path atomically (temp file in the same directory + os.replace)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def check_writable(directory: Path, who: str) -> None:
    """Create the directory if needed and prove a file can be written and removed there."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".check.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise os_error(f"{who}: cannot write to {directory}", exc) from exc


class LocalFileStore:
    """FileStore keeping files under ``data_dir``: the key is the relative path
    (``labels/<pi id>.pdf``, ``invoices/<number>.pdf``, ``invoices/<number>.xml``)."""

    name = "local"

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def path_for(self, key: str) -> Path:
        """The file of a key; keys are relative POSIX paths that stay inside the data dir."""
        parts = PurePosixPath(key).parts
        if not key or key.startswith("/") or "\\" in key or not parts or any(p in ("..", ".") for p in parts):
            raise PermanentError(f"local file store: invalid key {key!r} (must be a relative path like labels/x.pdf)")
        return self.data_dir.joinpath(*parts)

    def put(self, key: str, data: bytes, content_type: str) -> StoredFile:
        path = self.path_for(key)
        try:
            atomic_write(path, data)
        except OSError as exc:
            raise os_error(f"local file store: cannot write {key} under {self.data_dir}", exc) from exc
        resolved = path.resolve()
        return StoredFile(key=key, path=str(resolved), url=resolved.as_uri())

    def get(self, key: str) -> bytes:
        path = self.path_for(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise PermanentError(f"local file store: no file {key} under {self.data_dir}") from None
        except OSError as exc:
            raise os_error(f"local file store: cannot read {key} under {self.data_dir}", exc) from exc

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def check(self) -> None:
        check_writable(self.data_dir, "local file store")

    def link(self, key: str) -> str:
        """Where a person finds the file: its absolute path on this machine."""
        return str(self.path_for(key).resolve())
