"""Per-host CHAP secrets: made here, kept on the server in a file only root
can read (never in ZFS properties, argv, logs or output)."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterable, Mapping

from ..chap import Chap
from ..config import Config
from ..errors import NotFound, ServerError
from ..remote.base import Runner
from .paths import secret_path, secrets_dir

ALPHABET = string.ascii_letters + string.digits  # safe in URLs, config files and iPXE
SECRET_LENGTH = 16  # the Microsoft initiator takes 12 to 16


def new_secret(other_than: str | None = None) -> str:
    while True:
        secret = "".join(secrets.choice(ALPHABET) for _ in range(SECRET_LENGTH))
        if secret != other_than:  # the two directions of mutual CHAP must differ
            return secret


def new_chap(initiator: str, target: str, mutual: bool) -> Chap:
    """The initiator's name as its CHAP user (the Microsoft initiator's default),
    the target's name as the target's."""
    secret = new_secret()
    return Chap(
        user=initiator,
        secret=secret,
        mutual_user=target if mutual else None,
        mutual_secret=new_secret(other_than=secret) if mutual else None,
    )


def store(runner: Runner, config: Config, chaps: Mapping[str, Chap]) -> None:
    """Each host's secrets in its own root-only file (one directory check for all)."""
    if not chaps:
        return
    runner.run(["install", "-d", "-m", "0700", config.secrets_dir, secrets_dir(config)])
    for host, chap in chaps.items():
        data = {
            "user": chap.user,
            "secret": chap.secret,
            "mutual_user": chap.mutual_user,
            "mutual_secret": chap.mutual_secret,
        }
        runner.write_file(secret_path(config, host), json.dumps(data).encode(), mode=0o600)


def load(runner: Runner, config: Config, host: str) -> Chap:
    path = secret_path(config, host)
    try:
        data = json.loads(runner.read_file(path))
    except NotFound:
        raise NotFound(
            f"host {host!r} uses CHAP but its secret file {path} is missing",
            hint="re-provision the host, or restore the file from a backup",
        ) from None
    except ValueError as err:
        raise ServerError(f"{path} is not a zboot secret file: {err}") from err
    return Chap(
        user=data["user"],
        secret=data["secret"],
        mutual_user=data.get("mutual_user"),
        mutual_secret=data.get("mutual_secret"),
    )


def remove(runner: Runner, config: Config, hosts: Iterable[str]) -> None:
    """The hosts' secret files, in one command; no error for one already gone."""
    if paths := [secret_path(config, host) for host in hosts]:
        runner.run(["rm", "-f", "--", *paths])
