"""Per-host CHAP secrets: made here, kept on the server in a file only root
can read (never in ZFS properties, argv, logs or output)."""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Iterable, Mapping

from ..chap import Chap
from ..config import Config
from ..errors import Conflict, NotFound, ServerError
from ..remote.base import Runner
from .paths import legacy_secrets_dir, secret_path, secrets_dir

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


def secrets_home(runner: Runner, config: Config) -> str:
    """The directory holding the root's secret files now: its own (paths.secrets_dir),
    or, for a root with '_' whose files are still in the directory zboot used
    before issue 16 (paths.legacy_secrets_dir) and none in its own, that old one,
    as long as no other zboot root on the server could own it (then: Conflict,
    saying what to move where). Reads only; store() moves the old one."""
    own, old = secrets_dir(config), legacy_secrets_dir(config)
    if own == old:
        return own
    found = runner.run(
        ["sh", "-c", 'for d; do [ -d "$d" ] && echo "$d"; done; true', "sh", own, old],
        read_only=True,
    ).text.splitlines()
    if own in found or old not in found:
        return own
    if others := legacy_sharers(runner, config):
        raise Conflict(
            f"the secret files of root {config.root} may be in {old}, which zboot "
            f"before issue 16 used for root {' and '.join(others)} too; "
            f"this root's own directory is now {own}",
            hint=f"move the .chap files of {config.root}'s hosts (zboot list) into {own} "
            "(mkdir -m 0700 it first); zboot then uses that and leaves the old one to the other",
        )
    return old


def legacy_sharers(runner: Runner, config: Config) -> list[str]:
    """The other zboot roots on the server (datasets with a hosts/ below them)
    whose old secrets directory had the same name as this root's."""
    listed = set(
        runner.run(
            ["zfs", "list", "-H", "-o", "name", "-t", "filesystem"], read_only=True
        ).text.split()
    )
    name = config.root.replace("/", "_")
    return sorted(
        d
        for d in listed
        if d != config.root and d.replace("/", "_") == name and f"{d}/hosts" in listed
    )


def store(runner: Runner, config: Config, chaps: Mapping[str, Chap]) -> None:
    """Each host's secrets in its own root-only file (one directory check for
    all). The top directory gets mode 0700 only when zboot makes it: an existing
    one (whatever the config names) keeps its mode; the root's own is zboot's."""
    if not chaps:
        return
    own, home = secrets_dir(config), secrets_home(runner, config)
    if home != own:  # the old directory is this root's alone: it takes the new name
        runner.run(["mv", home, own])
    runner.run(["mkdir", "-p", "-m", "0700", config.secrets_dir])  # -p: never re-modes
    runner.run(["install", "-d", "-m", "0700", own])
    for host, chap in chaps.items():
        data = {
            "user": chap.user,
            "secret": chap.secret,
            "mutual_user": chap.mutual_user,
            "mutual_secret": chap.mutual_secret,
        }
        runner.write_file(secret_path(config, host), json.dumps(data).encode(), mode=0o600)


def load(runner: Runner, config: Config, host: str) -> Chap:
    path = secret_path(config, host, secrets_home(runner, config))
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
    if names := list(hosts):
        home = secrets_home(runner, config)
        runner.run(["rm", "-f", "--", *(secret_path(config, host, home) for host in names)])
