"""One exception tree with stable exit codes. Every message says what went
wrong; `hint` says what to do about it."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # anything not classified below
    BAD_INPUT = 2  # a name, size, option or file the user gave is invalid
    NOT_FOUND = 3  # the image, host, snapshot or dataset does not exist
    CONFLICT = 4  # exists already, in use, has dependents, locked
    SERVER = 5  # the server or a tool on it failed (SSH, zfs, target engine)
    DRIFT = 6  # `zboot doctor` found problems (it ran fine and changed nothing)
    INTERRUPTED = 130  # Ctrl-C


class ZbootError(Exception):
    """Base of every error zboot reports to the user."""

    exit_code: ExitCode = ExitCode.FAILURE
    kind = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def retold(self, message: str | None = None, hint: str | None = None) -> ZbootError:
        """A copy with another message or hint (the same kind and exit code).
        Not copy.copy: that calls __init__ again, with a subclass's own
        arguments (CommandFailed's argv, exit code, stderr) missing."""
        twin = type(self).__new__(type(self))
        twin.__dict__.update(self.__dict__)
        twin.args = (message or self.message,)
        twin.message = message or self.message
        twin.hint = hint if hint is not None else self.hint
        return twin

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "code": int(self.exit_code),
            "message": self.message,
            "hint": self.hint,
        }


class InvalidInput(ZbootError):
    exit_code = ExitCode.BAD_INPUT
    kind = "invalid-input"


class BadUsage(InvalidInput):
    """The command line itself: an unknown option, a missing argument, a bad
    choice (click finds these; zboot reports them under --json)."""

    kind = "usage"


class NotFound(ZbootError):
    exit_code = ExitCode.NOT_FOUND
    kind = "not-found"


class Conflict(ZbootError):
    exit_code = ExitCode.CONFLICT
    kind = "conflict"


class Drift(ZbootError):
    """What `zboot doctor` found: the command worked, the server has drifted."""

    exit_code = ExitCode.DRIFT
    kind = "drift"


class ServerError(ZbootError):
    exit_code = ExitCode.SERVER
    kind = "server"


class HostKeyError(ServerError):
    """The server's SSH host key is unknown or changed."""

    kind = "host-key"


class CommandFailed(ServerError):
    """A command on the server exited non-zero."""

    kind = "command-failed"

    def __init__(
        self, argv: tuple[str, ...], returncode: int, stderr: str, hint: str | None = None
    ) -> None:
        detail = stderr.strip() or "(no error output)"
        super().__init__(f"{' '.join(argv)} exited {returncode}: {detail}", hint)
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
