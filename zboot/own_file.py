"""Reading and replacing a file of this user's on this machine (the config
file) without being led astray by someone else: a file or symbolic link
owned by another user is refused, and so is a directory every user may
write to without the sticky bit (anyone could swap the file there). A
symbolic link of the user's own (dotfiles) is followed, one link at a
time, each checked. The new text goes into a temporary file created
exclusively (O_EXCL, O_NOFOLLOW: no link planted under its name is ever
opened), then renamed over the file: readers see the old file or the new
one. A new file is mode 0600 (it may name a private key); an existing
file keeps its mode."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from .errors import InvalidInput

NEW_MODE = 0o600
MAX_LINKS = 8


def _refuse(path: Path, why: str) -> InvalidInput:
    return InvalidInput(
        f"config file {str(path)!r}: {why}",
        hint="give --config FILE in a directory only you can write to",
    )


def _check_directory(path: Path) -> None:
    try:
        st = os.stat(path.parent)
    except FileNotFoundError:
        return  # nothing is there yet; write() makes it, this user's own
    except OSError as err:
        raise _refuse(path, f"cannot look at its directory: {err.strerror}") from None
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise _refuse(path, f"its directory {str(path.parent)!r} is writable by every user")


def resolve(path: Path) -> tuple[Path, os.stat_result | None]:
    """The regular file path stands for (following the user's own links) and
    its status, or (path, None) when there is no file yet; InvalidInput for
    what another user owns or could swap."""
    me = os.geteuid()
    for _ in range(MAX_LINKS):
        _check_directory(path)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path, None
        except OSError as err:
            raise _refuse(path, err.strerror or str(err)) from None
        if st.st_uid != me:
            kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "a file"
            raise _refuse(path, f"is {kind} owned by another user (uid {st.st_uid})")
        if stat.S_ISLNK(st.st_mode):
            path = path.parent / os.readlink(path)
            continue
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "is not a regular file")
        return path, st
    raise _refuse(path, f"more than {MAX_LINKS} symbolic links")


def read(path: Path) -> str | None:
    """The file's text, or None when there is none."""
    real, st = resolve(path)
    if st is None:
        return None
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read()
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput(f"cannot read config file {str(path)!r}: {err}") from None


def write(path: Path, text: str) -> Path:
    """Replace path's file (or the one the user's links lead to) with text,
    atomically; returns the file written."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    real, st = resolve(path)
    mode = stat.S_IMODE(st.st_mode) & 0o777 if st is not None else NEW_MODE
    tmp = f".{real.name}.{secrets.token_hex(6)}.tmp"
    directory = os.open(real.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, NEW_MODE, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), mode)
                handle.write(text.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, real.name, src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=directory)
            raise
        os.fsync(directory)
    except OSError as err:
        raise InvalidInput(
            f"cannot write config file {str(path)!r}: {err.strerror or err}",
            hint="give --config FILE for a file you can write",
        ) from None
    finally:
        os.close(directory)
    return real
