"""`zboot sync`: put right what `zboot doctor` finds, from the hosts' records:
finish operations cut short (each by its own operation's code), export what
is missing, remove exports, scripts and secret files of hosts that are gone,
write missing or stale scripts, give a host whose secret file is lost new
secrets. A logged-in machine is never cut off."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..chap import Chap
from ..errors import ZbootError
from ..names import HostName
from ..targets.base import Export
from . import chap as chap_store
from .bootfiles import ensure_boot_dir, recorded_script, remove_script, write_script
from .context import Context
from .destroy import destroy
from .doctor import ShowsMore, Survey, mid_operation, survey, wanted_exports
from .exports import host_export
from .maintenance import HOLDER
from .modes import finish_switch
from .paths import host_target, secret_path
from .rollback import rollback_hosts
from .state import READY, Host, HostState, State, done


@dataclass
class Synced:
    engine: str = ""
    checked: int = 0
    created: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    skipped_in_use: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    boot_files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # orphan scripts, secrets, marks
    rekeyed: list[str] = field(default_factory=list)
    errors: list[ZbootError] = field(default_factory=list)


def _finish_operations(c: Context, found: Survey, done_so_far: Synced) -> bool:
    """Destroys, mode switches and rollbacks cut short, each by its own
    command's code. Whether anything ran (the state must then be read again)."""
    state = found.state
    destroying = sorted(
        h.name for h in state.hosts.values() if h.record.state == HostState.DESTROYING
    )
    for r in destroy(c, destroying, force=False) if destroying else []:
        _note(done_so_far, r.host, r.error)
    by_mode: dict[str, list[HostName]] = {}
    for h in sorted(state.hosts.values(), key=lambda h: h.name):
        if h.record.state == HostState.SWITCHING:
            by_mode.setdefault(h.record.step.partition(":")[2] or "normal", []).append(h.name)
    for mode, names in by_mode.items():
        for sw in finish_switch(c, names, mode, None, None, force=False):
            _note(done_so_far, sw.host, sw.error)
    # rollbacks stopped with no new disk yet, or with the old one not yet
    # marked as an archive: rollback's own code finishes both
    moved = sorted(HostName(h) for h in state.unfinished_rollbacks if h not in state.hosts)
    moved += [
        h.name
        for h in sorted(state.hosts.values(), key=lambda h: h.name)
        if h.record.state == HostState.ROLLING_BACK and h.record.step == "rollback:cloned"
    ]
    for plan in rollback_hosts(c.zfs, c.config, moved, None, False, state) if moved else []:
        if plan.error is not None:
            done_so_far.errors.append(plan.error)
    return bool(destroying or by_mode or moved)


def _note(synced: Synced, host: str, error: ZbootError | None) -> None:
    if error is None:
        synced.finished.append(host)
    else:
        synced.errors.append(error)


class Secrets:
    """Hosts' CHAP, each read (or, when its file is lost, made anew) once."""

    def __init__(self, c: Context, found: Survey, synced: Synced) -> None:
        self.c, self.found, self.synced = c, found, synced
        self.known: dict[str, Chap | None] = {}

    def of(self, h: Host) -> Chap | None:
        if h.name not in self.known:
            self.known[h.name] = self._read_or_make(h)
        return self.known[h.name]

    def _read_or_make(self, h: Host) -> Chap | None:
        if not h.record.chap:
            return None
        if h.name in self.found.secret_hosts:
            return chap_store.load(self.c.runner, self.c.config, h.name)
        chap = chap_store.new_chap(
            h.record.initiator,
            host_target(self.c.config, h.name, h.record.target),
            h.record.chap == "mutual",
        )
        chap_store.store(self.c.runner, self.c.config, {h.name: chap})
        self.synced.rekeyed.append(h.name)
        return chap


def sync(c: Context) -> Synced:
    synced = Synced(engine=c.engine.name)
    found = survey(c)
    if _finish_operations(c, found, synced):
        found = survey(c)
    state = found.state
    # hosts whose last steps (export, script, "ready") are missing
    to_ready: dict[str, Host] = {
        h.name: h
        for h in state.hosts.values()
        if h.record.state in (HostState.PROVISIONING, HostState.ROLLING_BACK)
    }
    serve: dict[str, Host] = {
        h.name: h for h in state.hosts.values() if h.record.state == READY
    } | to_ready
    for h in _held(c, found, serve):
        # a logged-in host whose secret file is lost keeps its export (the
        # engine has its secret): new secrets in its file and script alone
        # would lock its machine out at the next boot; a later sync does it
        serve.pop(h.name)
        to_ready.pop(h.name, None)
        synced.skipped_in_use.append(_target(c, h))
    secrets = Secrets(c, found, synced)
    for h in serve.values():  # lost secret files: new secrets, so export and script anew
        if h.record.chap and h.name not in found.secret_hosts:
            secrets.of(h)
    redo = set(to_ready) | set(synced.rekeyed) | _wrong_secrets(c, found, serve, synced)
    _exports(c, found, to_ready, serve, redo, secrets, synced)
    _orphan_stores(c, found, synced)
    _scripts(c, found, serve, redo, secrets, synced)
    orphans = sorted(found.secret_hosts - set(state.hosts) - set(state.unfinished_rollbacks))
    chap_store.remove(c.runner, c.config, orphans)
    synced.removed += [secret_path(c.config, h) for h in orphans]
    for f in found.findings:
        if f.kind == "stale-maintenance":
            c.zfs.set_props(state.images[f.subject].dataset.name, {HOLDER: ""})
            synced.removed.append(f"maintenance mark of image {f.subject}")
    c.zfs.mark([h.dataset.name for h in to_ready.values()], done("sync"))
    synced.finished += list(to_ready)
    synced.skipped_in_use = sorted(set(synced.skipped_in_use))
    return synced


def _held(c: Context, found: Survey, serve: dict[str, Host]) -> list[Host]:
    """CHAP hosts whose secret file is lost while a machine is logged in."""
    return [
        h
        for h in serve.values()
        if h.record.chap and h.name not in found.secret_hosts and found.sessions.get(_target(c, h))
    ]


def _wrong_secrets(c: Context, found: Survey, serve: dict[str, Host], synced: Synced) -> set[str]:
    """Hosts whose target's CHAP is not their secret file's: exported and
    scripted again with the file's, unless a machine is logged in (then
    neither is touched: the script it booted from may have the target's)."""
    wrong = {f.subject for f in found.findings if f.kind == "wrong-secret"} & set(serve)
    busy = {h for h in wrong if found.sessions.get(_target(c, serve[h]))}
    synced.skipped_in_use += [_target(c, serve[h]) for h in busy]
    return wrong - busy


def _orphan_stores(c: Context, found: Survey, synced: Synced) -> None:
    """Storage objects of this root that no target uses (LIO, after a restart)."""
    names = [f.subject for f in found.findings if f.kind == "orphan-storage"]
    if names and isinstance(c.engine, ShowsMore):
        c.engine.remove_stores(names)
        synced.removed += [f"storage object {name}" for name in names]


def _target(c: Context, h: Host) -> str:
    return host_target(c.config, h.name, h.record.target)


def _exports(
    c: Context,
    found: Survey,
    to_ready: dict[str, Host],
    serve: dict[str, Host],
    redo: set[str],
    secrets: Secrets,
    synced: Synced,
) -> None:
    """Exports missing, wrong or to be made anew (new secrets) created, those
    of nobody deleted, in one engine call; a target in use is left alone."""
    state = found.state
    wanted = wanted_exports(c.config, state)
    for h in to_ready.values():
        if h.record.target:
            export = host_export(c.config, h.name, h.record.initiator, h.record.data == "on")
            wanted[export.target] = export
    synced.checked = len(wanted)
    create: list[Export] = []
    for target, export in sorted(wanted.items()):
        owner = serve.get(_owner(state, export))
        if found.exports.get(target) == export and (owner is None or owner.name not in redo):
            continue
        if found.sessions.get(target):
            synced.skipped_in_use.append(target)  # never disturb a live session
            continue
        chap = secrets.of(owner) if owner is not None else None
        create.append(replace(export, chap=chap))
    delete = []
    for target, export in found.exports.items():
        if target in wanted or mid_operation(state, export):
            continue
        if found.sessions.get(target):
            synced.skipped_in_use.append(target)
        else:
            delete.append(target)
    c.engine.apply(create=create, delete=delete)
    synced.created, synced.deleted = [e.target for e in create], delete


def _owner(state: State, export: Export) -> str:
    """The host an export serves (an image's export serves its maintainer)."""
    if export.host.startswith("image_"):
        image = state.images.get(export.host.removeprefix("image_"))
        return (image.dataset.prop(HOLDER) or "") if image is not None else ""
    return export.host


def _scripts(
    c: Context,
    found: Survey,
    serve: dict[str, Host],
    redo: set[str],
    secrets: Secrets,
    synced: Synced,
) -> None:
    """Every missing or stale script written again; orphans removed."""
    stale = {
        f.subject for f in found.findings if f.kind in ("missing-boot-file", "stale-boot-file")
    }
    names = sorted(name for name in stale | redo if name in serve)
    if names and c.config.portal:
        ensure_boot_dir(c.runner, c.config)
    for name in names:
        h = serve[name]
        script = recorded_script(c.config, c.engine.lun, found.state, name, h.record, secrets.of(h))
        if script is not None and (path := write_script(c.runner, c.config, h.record.mac, *script)):
            synced.boot_files.append(path)
    for f in found.findings:
        if f.kind == "orphan-boot-file":
            remove_script(c.runner, c.config, f.subject.removesuffix(".ipxe"))
            synced.removed.append(f"{c.config.boot_dir.rstrip('/')}/{f.subject}")
