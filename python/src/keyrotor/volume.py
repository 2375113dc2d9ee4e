"""Reading a mounted Secret volume consistently (docs/wire.md, "Reading
consistently").

kubelet writes a new timestamped directory and renames a new ``..data``
symlink over the old one; the visible files are links through ``..data``.
Reading every file through one resolved ``..data`` target gives a
consistent set even while kubelet swaps, and the target's name is a cheap
change token (one ``readlink``). A plain directory (local development)
works too, without the token.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Callable, Optional, Tuple, TypeVar

DATA_LINK = "..data"
#: Largest metadata file read; a larger one is malformed, never read whole.
MAX_TEXT_FILE = 4096
#: Largest key file read (a key of 1024 bytes and one newline).
MAX_KEY_FILE = 1025
#: Reads of a volume that kept changing before it fails as ``unstable``.
READ_ATTEMPTS = 5

_ASCII_SPACE = " \t\n\r\f"

T = TypeVar("T")


class VolumeError(Exception):
    """A directory that does not read. Names the file and the reason, never
    the content.

    ``error_class`` is the language-neutral class: ``missing``,
    ``malformed``, ``io`` or ``unstable``.
    """

    def __init__(self, error_class: str, file: str, reason: str):
        self.error_class = error_class
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")

    def __reduce__(self):
        return (VolumeError, (self.error_class, self.file, self.reason))


def _io(file: str, e: OSError) -> VolumeError:
    return VolumeError("io", file, f"cannot be read ({os.strerror(e.errno) if e.errno else type(e).__name__})")


def generation(directory: str) -> Optional[str]:
    """Where ``..data`` points now; ``None`` for a plain directory."""
    link = os.path.join(directory, DATA_LINK)
    try:
        return os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno == errno.EINVAL:  # there, but not a symlink: plain
            return None
        raise _io(link, e) from None


class Files:
    """The files of one generation, read through its resolved directory."""

    def __init__(self, root: str):
        self.root = root

    def path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def read(self, name: str, cap: int) -> Optional[bytes]:
        """A file's bytes, ``None`` when it does not exist; a file longer
        than ``cap`` bytes is malformed and not read past ``cap + 1``."""
        path = self.path(name)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _io(path, e) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise VolumeError("io", path, "is not a regular file")
            chunks, size = [], 0
            while size <= cap:
                chunk = os.read(fd, cap + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as e:
            raise _io(path, e) from None
        finally:
            os.close(fd)
        if size > cap:
            raise self.malformed(name, f"is larger than {cap} bytes")
        return b"".join(chunks)

    def text(self, name: str) -> Optional[str]:
        """A metadata file (never a key) without the ASCII whitespace around it."""
        raw = self.read(name, MAX_TEXT_FILE)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8").strip(_ASCII_SPACE)
        except UnicodeDecodeError:
            raise self.malformed(name, "is not UTF-8") from None

    def required(self, name: str) -> str:
        text = self.text(name)
        if text is None:
            raise self.missing(name)
        return text

    def missing(self, name: str) -> VolumeError:
        return VolumeError("missing", self.path(name), "is missing")

    def malformed(self, name: str, reason: str) -> VolumeError:
        return VolumeError("malformed", self.path(name), reason)


def read_consistent(directory: str, read: Callable[[Files], T]) -> Tuple[T, Optional[str]]:
    """``read(files)`` of one generation of ``directory``, and that
    generation. Retries when kubelet swapped the volume meanwhile (an error
    may then be only the swap); after :data:`READ_ATTEMPTS` swaps, fails as
    ``unstable``."""
    for _ in range(READ_ATTEMPTS):
        before = generation(directory)
        root = directory if before is None else os.path.join(directory, before)
        try:
            outcome: Tuple[bool, object] = (True, read(Files(root)))
        except VolumeError as e:
            outcome = (False, e)
        if generation(directory) == before:
            ok, value = outcome
            if ok:
                return value, before  # type: ignore[return-value]
            raise value  # type: ignore[misc]
    raise VolumeError("unstable", directory, f"kept changing on {READ_ATTEMPTS} reads")
