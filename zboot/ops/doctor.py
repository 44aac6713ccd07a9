"""What `zboot doctor` checks and `zboot sync` repairs: the drift between the
hosts' records in ZFS (the only state) and what the server has now: the
target engine's exports, the iPXE scripts, the CHAP secret files, iSCSI
sessions, the pool's free space. Reading it costs a fixed number of
commands, whatever the size of the fleet."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..boot.ipxe import script_name
from ..chap import Chap, digest
from ..config import Config
from ..errors import CommandFailed
from ..remote.base import Runner
from ..remote.lock import NO_PYTHON
from ..remote.python import python_argv
from ..targets.base import Export
from .bootfiles import secret_script_problems
from .chap import secrets_home
from .context import Context
from .exports import host_export
from .maintenance import HOLDER, image_export
from .paths import host_target, secret_path, target_iqn
from .state import READY, Host, HostState, State, read_state

POOL_FULL_PERCENT = 90  # of the space new data may use

# The second line of every script zboot writes names its host, mode and root.
HEADER = re.compile(
    r"^# zboot: host (?P<host>[a-z0-9-]+), mode (?P<mode>[a-z]+)"
    r"(?:, root (?P<root>\S+?))?;",
    re.MULTILINE,
)
INITIATOR_LINE = re.compile(r"^set initiator-iqn (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Finding:
    """One piece of drift: what kind, about what, and what sync does."""

    kind: str
    subject: str  # a host, target IQN or file
    detail: str
    repair: str  # what `zboot sync` does about it; "" when only a person can

    def to_json(self) -> dict[str, str | None]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "detail": self.detail,
            "repair": self.repair or None,
        }


@dataclass
class Survey:
    """Everything doctor compares, read once."""

    state: State
    engine: str
    exports: dict[str, Export]  # this root's, by target IQN
    sessions: dict[str, list[str]]
    scripts: dict[str, str]  # this root's boot scripts: file name -> text
    secret_hosts: set[str]  # hosts with a secret file
    pool: str
    capacity: int  # percent of the pool in use
    # CHAP as digests (chap.digest): each target's, by IQN, as the engine has
    # it (None: the engine does not show it), and each secret file's, by host
    chaps: dict[str, str] | None = None
    secret_digests: dict[str, str] = field(default_factory=dict)
    orphan_stores: dict[str, str] = field(default_factory=dict)  # name -> device
    not_checked: list[str] = field(default_factory=list)  # what this engine cannot show
    script_access: list[str] = field(default_factory=list)  # who may read secret scripts
    findings: list[Finding] = field(default_factory=list)


@runtime_checkable
class ShowsMore(Protocol):
    """An engine that also shows the CHAP its targets have (as digests) and
    its storage objects no target uses (LIO), read by its exports()."""

    def chap_digests(self) -> dict[str, str]: ...

    def orphan_stores(self) -> dict[str, str]: ...

    def remove_stores(self, names: Iterable[str]) -> None: ...


# The boot directory's *.ipxe files (regular files, links followed, no hidden
# ones: what the shell's glob and `test -f` find), each cut at 64 KiB, a
# record separator and its name ahead of each. One Python program, run inside
# the session agent where there is one: the shell below forks a `head` per
# file, and with 500 hosts on the lab's emulated server that took 23 s.
SCRIPTS_READER = """
import os, sys
out, directory = sys.stdout.buffer, sys.argv[1]
try:
    names = sorted(os.listdir(directory))
except OSError:
    names = []
for name in names:
    path = os.path.join(directory, name)
    if name.endswith(".ipxe") and not name.startswith(".") and os.path.isfile(path):
        try:
            with open(path, "rb") as script:
                data = script.read(65536)
        except OSError:
            continue
        out.write(b"\\036" + os.fsencode(name) + b"\\n" + data)
"""
# the same, where the server has no python3
SCRIPTS_SHELL = (
    'cd "$1" 2>/dev/null || exit 0; for f in *.ipxe; do '
    '[ -f "$f" ] && printf "\\036%s\\n" "$f" && head -c 65536 "$f"; '
    "done; true"
)


def read_scripts(runner: Runner, config: Config) -> dict[str, str]:
    """The boot directory's scripts that this root wrote, in one command."""
    read = runner.run(python_argv(SCRIPTS_READER, config.boot_dir), check=False, read_only=True)
    if read.returncode == NO_PYTHON:
        read = runner.run(["sh", "-c", SCRIPTS_SHELL, "sh", config.boot_dir], read_only=True)
    elif not read.ok:
        raise CommandFailed(read.argv, read.returncode, read.stderr.decode(errors="replace"))
    listing = read.text
    scripts = {}
    for chunk in listing.split("\x1e")[1:]:
        name, _, text = chunk.partition("\n")
        found = HEADER.search(text)
        if found and found["root"] == config.root:
            scripts[name] = text
    return scripts


def read_secret_hosts(runner: Runner, config: Config) -> set[str]:
    listed = runner.run(
        ["sh", "-c", 'cd "$1" 2>/dev/null && ls; true', "sh", secrets_home(runner, config)],
        read_only=True,
    ).text.split()
    return {name.removesuffix(".chap") for name in listed if name.endswith(".chap")}


def read_secret_digests(runner: Runner, config: Config, hosts: Iterable[str]) -> dict[str, str]:
    """The digest of each host's secret file (chap.digest), in one command;
    a file that is not a zboot secret file gets "unreadable". The secrets
    themselves go nowhere else."""
    paths = {secret_path(config, h): h for h in hosts}
    if not paths:
        return {}
    listing = runner.run(
        [
            "sh",
            "-c",
            'for f; do [ -f "$f" ] && printf "\\036%s\\n" "$f" && cat "$f"; done; true',
            "sh",
            *paths,
        ],
        read_only=True,
    ).text
    found = {}
    for chunk in listing.split("\x1e")[1:]:
        path, _, text = chunk.partition("\n")
        try:
            data = json.loads(text)
            chap = Chap(
                data["user"], data["secret"], data.get("mutual_user"), data.get("mutual_secret")
            )
            found[paths[path]] = digest(chap)
        except (ValueError, KeyError, TypeError):
            found[paths.get(path, path)] = "unreadable"
    return found


def pool_capacity(runner: Runner, pool: str) -> int:
    """How full the pool is for new data, in percent: used against used plus
    available (ZFS keeps some space back, so `zpool list` reads lower when
    clones already fail for want of space)."""
    used, available = (
        int(v)
        for v in runner.run(
            ["zfs", "get", "-Hp", "-o", "value", "used,available", pool], read_only=True
        ).text.split()
    )
    return used * 100 // max(used + available, 1)


def survey(c: Context, script_modes: bool = False, side_by_side: bool = False) -> Survey:
    """`zboot doctor`: everything zboot owns, read, and what has drifted.
    A fixed number of commands, whatever the fleet size; changes nothing.
    script_modes: also who may read the scripts that hold secrets (doctor;
    sync cannot repair that: a script's mode is the admin's to set).
    side_by_side: the engine read while ZFS is read (a run that takes no
    lock: doctor; with 500 hosts in the lab each took about 5 s)."""
    config, engine = c.config, c.engine
    if side_by_side:
        with ThreadPoolExecutor(1, thread_name_prefix="zboot-engine") as beside:
            reading = beside.submit(engine.exports)
            state = read_state(c.zfs, config)
            all_exports = reading.result()
    else:
        state = read_state(c.zfs, config)
        all_exports = engine.exports()
    ours = f"/dev/zvol/{config.root}/"
    exports = {iqn: e for iqn, e in all_exports.items() if e.device.startswith(ours)}
    pool = config.root.split("/")[0]
    found = Survey(
        state,
        engine.name,
        exports,
        engine.sessions(list(exports)) if exports else {},
        read_scripts(c.runner, config),
        read_secret_hosts(c.runner, config),
        pool,
        pool_capacity(c.runner, pool),
    )
    _read_back(c, found)
    if script_modes:
        found.script_access = secret_script_problems(c.runner, config, found.scripts)
    found.findings = check(config, engine.lun, found)
    return found


def _read_back(c: Context, found: Survey) -> None:
    """What an engine that shows more has: its targets' CHAP (compared with
    the secret files, as digests) and its orphan stores on this root."""
    chap_hosts = [
        h.name for h in found.state.hosts.values() if h.record.chap and h.record.state == READY
    ]
    if not isinstance(c.engine, ShowsMore):
        if chap_hosts:
            found.not_checked.append(
                f"CHAP secrets of the targets: the {c.engine.name} engine does not show them"
            )
        return
    found.chaps = c.engine.chap_digests()
    ours = f"/dev/zvol/{c.config.root}/"
    found.orphan_stores = {
        name: device for name, device in c.engine.orphan_stores().items() if device.startswith(ours)
    }
    present = [h for h in chap_hosts if h in found.secret_hosts]
    found.secret_digests = read_secret_digests(c.runner, c.config, present)


def wanted_exports(config: Config, state: State) -> dict[str, Export]:
    """The exports the records ask for, by target IQN, without secrets: each
    ready host's disk, and the image of a host in maintenance."""
    wanted = {}
    for h in state.hosts.values():
        if h.record.target and h.record.state == READY:
            export = host_export(config, h.name, h.record.initiator, h.record.data == "on")
            wanted[export.target] = export
        if h.record.mode == "maintenance" and h.record.image in state.images:
            image = state.images[h.record.image]
            export = image_export(config, image, h.record.initiator, None)
            wanted[export.target] = export
    return wanted


def expected_script(config: Config, lun: int, h: Host) -> tuple[str, str | None]:
    """The mode a host's script must have, and the target it must attach."""
    mode = h.record.mode or "normal"
    if mode == "local":
        return mode, None
    if mode == "maintenance":
        return mode, target_iqn(config, f"image.{h.get('image')}")
    return mode, host_target(config, h.name, h.record.target)


def check(config: Config, lun: int, s: Survey) -> list[Finding]:
    """Every kind of drift, each area in turn."""
    return [
        *_operations(s),
        *_exports(config, s),
        *_scripts(config, lun, s),
        *_secrets(s),
        *_chaps(config, s),
        *(Finding("boot-file-access", p.split()[0], p, "") for p in s.script_access),
        *_space_and_marks(s),
        *_data_disks(s),
    ]


def _data_disks(s: Survey) -> list[Finding]:
    """A host whose record names a data disk that is not there, and a data
    disk of no host. Neither is repaired: a data disk holds a user's data,
    and only a person knows what it should be."""
    out: list[Finding] = []
    for h in sorted(s.state.hosts.values(), key=lambda h: h.name):
        if h.record.data == "on" and h.name not in s.state.data:
            out.append(
                Finding(
                    "missing-data-disk",
                    h.name,
                    "its record names a data disk, and there is none (a data rebase cut "
                    "short is finished by running it again)",
                    "",
                )
            )
    for host, disk in sorted(s.state.data.items()):
        if host not in s.state.hosts:
            out.append(Finding("orphan-data-disk", disk.name, "a data disk of no host", ""))
    return out


def _operations(s: Survey) -> list[Finding]:
    """Hosts stuck mid-operation."""
    out: list[Finding] = []
    hosts = s.state.hosts
    for h in sorted(hosts.values(), key=lambda h: h.name):
        if h.unfinished:
            out.append(
                Finding(
                    "unfinished",
                    h.name,
                    f"state {h.get('state')}, step {h.get('step') or '?'}",
                    "finish it",
                )
            )
    for host in sorted(s.state.unfinished_rollbacks):
        if host not in hosts:
            out.append(
                Finding(
                    "unfinished",
                    host,
                    "a rollback stopped after the old disk "
                    "moved to the archive; the host has no disk",
                    "finish the rollback",
                )
            )
    return out


def _exports(config: Config, s: Survey) -> list[Finding]:
    """Exports missing, wrong or of nobody; sessions nobody asks for."""
    out: list[Finding] = []
    wanted = wanted_exports(config, s.state)
    for target, export in sorted(wanted.items()):
        present = s.exports.get(target)
        if present is None:
            out.append(
                Finding("missing-export", export.host, f"{target} is not exported", "export it")
            )
        elif present != export:
            out.append(
                Finding(
                    "wrong-export",
                    export.host,
                    f"{target} exports {present.device} to {present.initiator or 'nobody'}",
                    "export it again",
                )
            )
    for target, export in sorted(s.exports.items()):
        if target not in wanted and not mid_operation(s.state, export):
            out.append(
                Finding(
                    "orphan-target",
                    target,
                    f"exports {export.device}, which no "
                    "ready host or image in maintenance asks for",
                    "" if s.sessions.get(target) else "remove it",
                )
            )
    for target, initiators in sorted(s.sessions.items()):
        allowed = wanted.get(target)
        for initiator in initiators:
            if allowed is None or initiator != allowed.initiator:
                out.append(Finding("stale-session", target, f"{initiator} is logged in", ""))
    return out


def _scripts(config: Config, lun: int, s: Survey) -> list[Finding]:
    """Boot scripts of nobody, missing, or not what the record asks for."""
    out: list[Finding] = []
    hosts = s.state.hosts
    macs = {script_name(h.record.mac): h for h in hosts.values() if h.record.mac}
    halfway = {
        script_name(r["mac"]) for r in s.state.unfinished_rollbacks.values() if r.get("mac")
    }  # the rollback's re-run keeps their scripts
    if config.scripts == "service":  # `zboot serve` answers for every host
        return [
            Finding(
                "orphan-boot-file",
                name,
                'boot scripts come from `zboot serve` ([boot] scripts = "service")',
                "remove it",
            )
            for name in sorted(s.scripts)
        ]
    for name in sorted(s.scripts):
        if name not in macs and name not in halfway:
            out.append(Finding("orphan-boot-file", name, "no host has this MAC", "remove it"))
    if config.portal:
        for name, h in sorted(macs.items()):
            if h.record.state != READY:
                continue
            text = s.scripts.get(name)
            if text is None:
                out.append(Finding("missing-boot-file", h.name, f"{name} is missing", "write it"))
            elif problem := _script_problem(config, lun, h, text):
                out.append(
                    Finding("stale-boot-file", h.name, f"{name}: {problem}", "write it again")
                )
    return out


def _secrets(s: Survey) -> list[Finding]:
    """Secret files missing or of nobody."""
    out: list[Finding] = []
    hosts = s.state.hosts
    for h in sorted(hosts.values(), key=lambda h: h.name):
        if h.record.chap and h.name not in s.secret_hosts and not h.unfinished:
            out.append(
                Finding(
                    "missing-secret",
                    h.name,
                    "the host uses CHAP and its secret file is missing",
                    "new secrets, export and script",
                )
            )
    for host in sorted(s.secret_hosts - set(hosts) - set(s.state.unfinished_rollbacks)):
        out.append(Finding("orphan-secret", host, "a secret file for no host", "remove it"))
    return out


def _chaps(config: Config, s: Survey) -> list[Finding]:
    """Targets whose CHAP is not their host's secret file's (compared as
    digests; only where the engine shows it), and orphan storage objects."""
    out: list[Finding] = []
    for h in sorted(s.state.hosts.values(), key=lambda h: h.name):
        target = host_target(config, h.name, h.record.target)
        has = (s.chaps or {}).get(target)
        if s.chaps is None or has is None or h.record.state != READY:
            continue
        wanted = s.secret_digests.get(h.name) if h.record.chap else ""
        if wanted is None:
            continue  # no secret file read: missing-secret says so
        if has != wanted:
            out.append(
                Finding(
                    "wrong-secret",
                    h.name,
                    f"{target}'s CHAP is not the one in the host's secret file"
                    if h.record.chap
                    else f"{target} asks for CHAP, which the host's record does not",
                    "" if s.sessions.get(target) else "export it again",
                )
            )
    for name, device in sorted(s.orphan_stores.items()):
        out.append(
            Finding(
                "orphan-storage",
                name,
                f"a storage object on {device} with no target (it keeps the zvol busy)",
                "remove it",
            )
        )
    return out


def _space_and_marks(s: Survey) -> list[Finding]:
    """Stale maintenance marks; a pool nearly full."""
    out: list[Finding] = []
    hosts = s.state.hosts
    for image in sorted(s.state.images.values(), key=lambda i: i.name):
        holder = image.dataset.prop(HOLDER)
        if not holder:
            continue
        maintainer = hosts.get(holder)
        if maintainer is None or (
            maintainer.record.mode != "maintenance"
            and maintainer.record.state != HostState.SWITCHING
        ):
            out.append(
                Finding(
                    "stale-maintenance",
                    image.name,
                    f"marked as in maintenance by {holder}, which is not in maintenance",
                    "clear the mark",
                )
            )
    if s.capacity >= POOL_FULL_PERCENT:
        out.append(
            Finding(
                "pool-full",
                s.pool,
                f"{s.capacity}% full (doctor warns from {POOL_FULL_PERCENT}%)",
                "",
            )
        )
    return out


def mid_operation(state: State, export: Export) -> bool:
    """An export of a host mid-operation: the operation's re-run owns it."""
    h = state.hosts.get(export.host)
    return h is not None and h.unfinished


def _script_problem(config: Config, lun: int, h: Host, text: str) -> str:
    header = HEADER.search(text)
    mode, target = expected_script(config, lun, h)
    if header is None or header["host"] != h.name or header["mode"] != mode:
        return f"written for {header['mode'] if header else '?'} mode, the host is in {mode}"
    if target is not None and f":{target}" not in text:
        return f"does not attach {target}"
    initiator = INITIATOR_LINE.search(text)
    if mode != "local" and (initiator is None or initiator[1] != h.record.initiator):
        return f"names another initiator than {h.get('initiator')}"
    return ""
