"""`zboot doctor` (what has drifted; changes nothing) and `zboot sync` (puts
right what can be put right from the hosts' records: finishes operations cut
short, re-creates exports, scripts and lost secrets, removes orphans)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import typer

from ..errors import ZbootError
from ..ops import chap as chap_store
from ..ops import hosts as ops
from ..ops.bootfiles import boot_target, ensure_boot_dir, remove_script, write_script
from ..ops.doctor import Survey, mid_operation, survey, wanted_exports
from ..ops.exports import host_export
from ..ops.maintenance import HOLDER, image_export
from ..ops.state import READY, Host, State, done
from ..targets.base import Chap, Export
from .hosts import retire
from .modes import switch
from .output import table
from .session import Outcome, Session, run


class Drift(ZbootError):
    kind = "drift"


def doctor(ctx: typer.Context) -> None:
    """Report drift between the hosts' records and the server: targets without
    a disk, disks without a target, boot files for unknown MACs or the wrong
    target, hosts stuck mid-operation, stale sessions, lost secrets, a pool
    nearly full. Changes nothing; exit 1 when anything is found."""

    def action(s: Session) -> Outcome:
        found = survey(s.zfs, s.config, s.runner, s.engine)
        rows = [f.to_json() for f in found.findings]
        data = {
            "engine": found.engine,
            "hosts": len(found.state.hosts),
            "pool": {"name": found.pool, "capacity": found.capacity},
            "findings": rows,
        }
        text = (
            f"{len(found.state.hosts)} hosts, engine {found.engine}, pool {found.pool} "
            f"{found.capacity}% full: "
        )
        if not rows:
            return Outcome(data, text + "nothing has drifted")
        shown = [r | {"repair": r["repair"] or "(by hand)"} for r in rows]
        problems = f"{len(rows)} problem{'' if len(rows) == 1 else 's'}"
        text += f"{problems}\n" + table(shown, ["kind", "subject", "detail", "repair"])
        return Outcome(
            data, text, [Drift(f"{problems} found", hint="zboot sync repairs those with a repair")]
        )

    run(ctx, "doctor", action, changes=False)


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


def _finish_operations(s: Session, found: Survey, done_so_far: Synced) -> bool:
    """Destroys, mode switches and rollbacks cut short, each by its own
    command's code. Whether anything ran (the state must then be read again)."""
    state = found.state
    destroying = sorted(h.name for h in state.hosts.values() if h.get("state") == "destroying")
    for r in retire(s, destroying, force=False) if destroying else []:
        _note(done_so_far, r.host, r.error)
    by_mode: dict[str, list[str]] = {}
    for h in sorted(state.hosts.values(), key=lambda h: h.name):
        if h.get("state") == "switching":
            by_mode.setdefault(h.get("step").partition(":")[2] or "normal", []).append(h.name)
    for mode, names in by_mode.items():
        for sw in switch(s, names, mode, None, None, force=False):
            _note(done_so_far, sw.host, sw.error)
    moved = sorted(h for h in state.unfinished_rollbacks if h not in state.hosts)
    for plan in ops.rollback_hosts(s.zfs, s.config, moved, None, False, state) if moved else []:
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

    def __init__(self, s: Session, found: Survey, synced: Synced) -> None:
        self.s, self.found, self.synced = s, found, synced
        self.known: dict[str, Chap | None] = {}

    def of(self, h: Host) -> Chap | None:
        if h.name not in self.known:
            self.known[h.name] = self._read_or_make(h)
        return self.known[h.name]

    def _read_or_make(self, h: Host) -> Chap | None:
        if not h.get("chap"):
            return None
        if h.name in self.found.secret_hosts:
            return chap_store.load(self.s.runner, self.s.config, h.name)
        chap = chap_store.new_chap(
            h.get("initiator"),
            h.get("target") or host_export(self.s.config, h.name, "").target,
            h.get("chap") == "mutual",
        )
        chap_store.store(self.s.runner, self.s.config, {h.name: chap})
        self.synced.rekeyed.append(h.name)
        return chap


def repair(s: Session) -> Synced:
    synced = Synced(engine=s.engine.name)
    found = survey(s.zfs, s.config, s.runner, s.engine)
    if _finish_operations(s, found, synced):
        found = survey(s.zfs, s.config, s.runner, s.engine)
    state = found.state
    # hosts whose last steps (export, script, "ready") are missing
    to_ready = {
        h.name: h
        for h in state.hosts.values()
        if h.get("state") in ("provisioning", "rolling-back")
    }
    serve = {h.name: h for h in state.hosts.values() if h.get("state") == READY} | to_ready
    secrets = Secrets(s, found, synced)
    for h in serve.values():  # lost secret files: new secrets, so export and script anew
        if h.get("chap") and h.name not in found.secret_hosts:
            secrets.of(h)
    redo = set(to_ready) | set(synced.rekeyed)
    wanted = wanted_exports(s.config, state)
    for h in to_ready.values():
        if h.get("target"):
            export = host_export(s.config, h.name, h.get("initiator"))
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
    s.engine.apply(create=create, delete=delete)
    synced.created, synced.deleted = [e.target for e in create], delete
    _scripts(s, found, serve, redo, secrets, synced)
    orphans = sorted(found.secret_hosts - set(state.hosts) - set(state.unfinished_rollbacks))
    chap_store.remove(s.runner, s.config, orphans)
    synced.removed += [chap_store.secret_path(s.config, h) for h in orphans]
    for f in found.findings:
        if f.kind == "stale-maintenance":
            s.zfs.set_props(state.images[f.subject].dataset.name, {HOLDER: ""})
            synced.removed.append(f"maintenance mark of image {f.subject}")
    s.zfs.mark([h.dataset.name for h in to_ready.values()], done("sync"))
    synced.finished += list(to_ready)
    return synced


def _owner(state: State, export: Export) -> str:
    """The host an export serves (an image's export serves its maintainer)."""
    if export.host.startswith("image_"):
        image = state.images.get(export.host.removeprefix("image_"))
        return (image.dataset.prop(HOLDER) or "") if image is not None else ""
    return export.host


def _scripts(
    s: Session,
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
    if names and s.config.portal:
        ensure_boot_dir(s.runner, s.config)
    for name in names:
        h = serve[name]
        record = h.dataset.record()
        target = boot_target(s.config, s.engine.lun, name, record, secrets.of(h))
        if target is None:
            continue
        mode = record.get("mode") or "normal"
        if mode == "maintenance" and record.get("image") in found.state.images:
            gold = image_export(
                s.config, found.state.images[record["image"]], record["initiator"], None
            )
            target = replace(target, target=gold.target)
        synced.boot_files.append(
            write_script(
                s.runner,
                s.config,
                record["mac"],
                mode,
                target,
                s.config.winpe if mode == "install" else None,
            )
        )
    for f in found.findings:
        if f.kind == "orphan-boot-file":
            remove_script(s.runner, s.config, f.subject.removesuffix(".ipxe"))
            synced.removed.append(f"{s.config.boot_dir.rstrip('/')}/{f.subject}")


def sync(ctx: typer.Context) -> None:
    """Put right what `zboot doctor` finds, from the hosts' records: finish
    operations cut short, export what is missing, remove exports, scripts and
    secret files of hosts that are gone, write missing or stale scripts,
    give a host whose secret file is lost new secrets. Never cuts off a
    logged-in machine."""

    def action(s: Session) -> Outcome:
        synced = repair(s)
        data = {
            "engine": synced.engine,
            "created": synced.created,
            "deleted": synced.deleted,
            "skipped_in_use": sorted(synced.skipped_in_use),
            "checked": synced.checked,
            "finished": sorted(set(synced.finished)),
            "boot_files": synced.boot_files,
            "removed": synced.removed,
            "rekeyed": synced.rekeyed,
        }
        text = (
            f"{synced.checked} exports checked ({synced.engine}): "
            f"{len(synced.created)} re-created, {len(synced.deleted)} removed"
            + "".join(f"\n  re-created {t}" for t in synced.created)
            + "".join(f"\n  removed {t}" for t in synced.deleted)
            + "".join(f"\n  left alone (in use) {t}" for t in sorted(synced.skipped_in_use))
            + "".join(f"\n  finished {h}" for h in sorted(set(synced.finished)))
            + "".join(f"\n  wrote {f}" for f in synced.boot_files)
            + "".join(f"\n  removed {f}" for f in synced.removed)
            + "".join(f"\n  new CHAP secrets for {h}" for h in synced.rekeyed)
        )
        return Outcome(data, text, synced.errors)

    run(ctx, "sync", action)
