"""Host commands: clone, list, show, snapshot, rollback, prune, destroy."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from .. import faults
from ..errors import Conflict, InvalidInput, ZbootError
from ..names import host_name, iqn, snapshot_name
from ..ops import chap as chap_store
from ..ops import hosts as ops
from ..ops.bootfiles import remove_script
from ..ops.exports import host_export, in_use, record_export, target_iqn
from ..ops.hostfile import HostSpec, read_hosts
from ..ops.provision import Provisioned, provision
from ..ops.state import Host, done, leaf, reached, read_state
from ..targets.base import Chap, Export
from .batch import HostResult, batch_outcome
from .images import stamp
from .output import human_size, table
from .session import Outcome, Session, confirm, run


def host_row(h: Host, in_use: dict[str, list[str]]) -> dict[str, object]:
    return {
        "name": h.name,
        "mac": h.get("mac"),
        "image": f"{h.get('image')}@{h.get('version')}",
        "mode": h.get("mode"),
        "state": h.get("state"),
        "used": h.dataset.used,
        "created": h.get("created"),
        "target": h.get("target") or None,
        "in_use": in_use.get(h.get("target"), []),
    }


RECORD_ORDER = (
    "kind",
    "state",
    "image",
    "version",
    "origin",
    "mac",
    "initiator",
    "mode",
    "created",
    "rolled-back",
)


def record_order(key: str) -> tuple[int, str]:
    """A host's record in the order people read it; unknown keys last."""
    return (RECORD_ORDER.index(key) if key in RECORD_ORDER else len(RECORD_ORDER), key)


def chap_view(chap: Chap | None, show_secrets: bool) -> dict[str, str | None] | None:
    """CHAP as output shows it: the users, and the secrets only when asked for."""
    if chap is None:
        return None
    view: dict[str, str | None] = {"user": chap.user, "mutual_user": chap.mutual_user}
    if show_secrets:
        view |= {"secret": chap.secret, "mutual_secret": chap.mutual_secret}
    return view


def shown_source(plan: ops.Rollback) -> str:
    """A restore point by its name, an image version as image@version."""
    if plan.source.startswith(plan.archive + "@"):
        return plan.source.rsplit("@", 1)[1]
    return leaf(plan.source)


def roll_back(
    s: Session, names: list[str], point: str | None, discard: bool, force: bool
) -> list[ops.Rollback]:
    """Roll hosts back: exports looked up, refused while in use (unless
    force) and taken down in one engine call each; the zfs changes in one
    chain batch; the exports of the hosts that have a disk again put back in
    one engine call."""
    state = read_state(s.zfs, s.config)
    exports: dict[str, Export] = {}
    refused: dict[str, ZbootError] = {}
    for name in names:
        try:
            record = state.record(name)
            if record.get("target") and s.engine.name != "none":
                exports[name] = record_export(s.runner, s.config, name, record)
        except ZbootError as err:
            refused[name] = err
    if exports and not force:
        live = s.engine.sessions([e.target for e in exports.values()])
        for name, export in list(exports.items()):
            if initiators := live.get(export.target):
                refused[name] = in_use(exports.pop(name), initiators)
    faults.point("rollback.checked", engine=True)
    if exports:  # saved when they are put back
        s.engine.apply(delete=[e.target for e in exports.values()], persist=False)
    faults.point("rollback.unexported")
    try:
        plans = ops.rollback_hosts(
            s.zfs, s.config, [n for n in names if n not in refused], point, discard, state
        )
    except BaseException:
        with suppress(ZbootError):
            s.engine.apply(create=list(exports.values()))
        raise
    faults.point("rollback.cloned", engine=True)
    if exports:  # the exports back where there is a disk again; saved either way
        back = [exports[p.host] for p in plans if p.host in exports and p.disk_exists]
        gone = [e.target for e in exports.values() if e not in back]
        s.engine.apply(create=back, delete=gone)
    faults.point("rollback.exported")
    # ready again: the hosts rolled back, and those whose old disk never moved
    s.zfs.mark(
        [
            f"{s.config.hosts}/{p.host}"
            for p in plans
            if p.disk_exists and (p.changes or p.error is None)
        ],
        done("rollback"),
    )
    done_plans = {p.host: p for p in plans}
    return [done_plans.get(n) or ops.Rollback(n, error=refused[n]) for n in names]


def single_outcome(s: Session, one: Provisioned, show_secrets: bool) -> Outcome:
    record = one.record or {}
    text = f"host {one.host} cloned from {record.get('origin')}"
    if s.engine.name != "none":
        text += (
            f"; exported as {target_iqn(s.config, one.host)} LUN {s.engine.lun} to "
            f"{record.get('initiator')}" + (" with CHAP" if one.chap else "")
        )
    if one.boot_file:
        text += f"\nboot file {one.boot_file} (mode normal)"
    shown = chap_view(one.chap, show_secrets)
    text += "".join(
        f"\nchap {k.replace('_', ' ')}: {v}" for k, v in (shown or {}).items() if v is not None
    )
    return Outcome(
        {"host": one.host} | record | {"chap_credentials": shown, "boot_file": one.boot_file}, text
    )


def clone_batch_outcome(image: str, results: list[Provisioned], show_secrets: bool) -> Outcome:
    made = [
        HostResult(
            r.host,
            {
                "record": r.record,
                "boot_file": r.boot_file,
                "chap_credentials": chap_view(r.chap, show_secrets),
            },
            (r.record or {}).get("initiator", ""),
            r.error,
            {"target": (r.record or {}).get("target", "")},
        )
        for r in results
    ]
    outcome = batch_outcome(made, "cloned", {"image": image})
    failed = len(outcome.errors)
    outcome.data |= {"cloned": len(results) - failed, "failed": failed}
    return outcome


@dataclass
class Retired:
    host: str
    gone: list[str] = field(default_factory=list)
    error: ZbootError | None = None


def retire(s: Session, names: list[str], force: bool) -> list[Retired]:
    """Destroy hosts: sessions looked up, then each step for all hosts at once:
    the disks marked "destroying", the exports taken down (one engine call),
    the secret and boot files removed, every disk destroyed in one channel
    program. A host in use (unless force) fails alone. From the mark on, the
    destroy is under way: if it stops (a fault, a disk ZFS cannot destroy),
    the same command finishes it."""
    state = read_state(s.zfs, s.config)
    results = [Retired(n) for n in names]
    exports: dict[str, Export] = {}
    macs: dict[str, str] = {}
    for r in results:
        try:
            record = state.record(r.host)
            if record.get("mode") == "maintenance":
                raise Conflict(
                    f"host {r.host!r} is in maintenance: its machine boots the "
                    f"image {record.get('image')!r} itself",
                    hint=f"zboot mode {r.host} normal ends it first",
                )
            macs[r.host] = record.get("mac", "")
            if record.get("target") and s.engine.name != "none":
                exports[r.host] = host_export(s.config, r.host, record.get("initiator", ""))
        except ZbootError as err:
            r.error = err
    if exports and not force:
        live = s.engine.sessions([e.target for e in exports.values()])
        for r in results:
            if r.host in exports and (initiators := live.get(exports[r.host].target)):
                r.error = in_use(exports.pop(r.host), initiators)
    todo = [r for r in results if r.error is None]
    datasets = {}
    for r in todo:
        try:
            datasets[r.host] = ops.host_datasets(state, r.host)
        except ZbootError as err:
            r.error = err
    todo = [r for r in todo if r.error is None]
    s.zfs.mark(
        [f"{s.config.hosts}/{r.host}" for r in todo], reached("destroy", "marked", "destroying")
    )
    faults.point("destroy.marked", engine=True)
    if exports:
        s.engine.apply(delete=[exports[r.host].target for r in todo if r.host in exports])
    faults.point("destroy.unexported")
    chap_store.remove(s.runner, s.config, [r.host for r in todo])
    for r in todo:
        if macs.get(r.host):
            remove_script(s.runner, s.config, macs[r.host])
    faults.point("destroy.files")
    # every disk in one channel program; what it could not destroy (busy a
    # moment after the engine let go, or a clone of another's snapshot) one
    # by one, with retries
    left = s.zfs.destroy_many([name for r in todo for name in datasets[r.host]])
    for r in todo:
        r.gone = [n for n in datasets[r.host] if left.get(n) is None]
        if not (remaining := [n for n in datasets[r.host] if left.get(n) is not None]):
            continue
        try:
            r.gone += ops.destroy_in_order(s.zfs, remaining)
        except ZbootError as err:
            err.hint = f"once that is dealt with, zboot destroy {r.host} finishes it"
            r.error = err
    return results


def register(app: typer.Typer) -> None:
    @app.command("clone")
    def clone(
        ctx: typer.Context,
        image: Annotated[str, typer.Argument(metavar="IMAGE[@VERSION]")],
        host: Annotated[
            str | None, typer.Argument(help="the new host (or give --hosts FILE for a batch)")
        ] = None,
        mac: Annotated[str | None, typer.Option("--mac", help="the machine's MAC address")] = None,
        initiator: Annotated[
            str | None,
            typer.Option(help="the machine's initiator IQN (default: derived from HOST)"),
        ] = None,
        chap: Annotated[
            bool,
            typer.Option("--chap", help="require CHAP: a new 16-character secret for this host"),
        ] = False,
        mutual_chap: Annotated[
            bool, typer.Option("--mutual-chap", help="CHAP both ways: the target proves itself too")
        ] = False,
        hosts_file: Annotated[
            Path | None,
            typer.Option(
                "--hosts",
                metavar="FILE",
                help="a batch: a CSV (host,mac[,initiator][,chap]) or TOML ([[host]]) file",
            ),
        ] = None,
        show_secrets: Annotated[
            bool,
            typer.Option("--show-secrets", help="print the CHAP secrets (else kept on the server)"),
        ] = False,
    ) -> None:
        """Provision a host (or a batch) from an image version (latest when omitted).
        Example: zboot clone win11 pc01 --mac 52:54:00:12:34:01"""

        def action(s: Session) -> Outcome:
            if hosts_file is not None:
                if host or mac or initiator or chap or mutual_chap:
                    raise InvalidInput(
                        "--hosts takes every host from the file: give no HOST, "
                        "--mac, --initiator or --chap with it",
                        hint="put initiator and chap columns in the file",
                    )
                specs = read_hosts(hosts_file)
            elif host is None or mac is None:
                raise InvalidInput("give HOST and --mac, or --hosts FILE")
            else:
                if initiator is not None:
                    iqn(initiator)  # given empty is not "the default"
                kind = "mutual" if mutual_chap else "one-way" if chap else ""
                specs = [HostSpec(host, mac, initiator, kind)]
            results = provision(s.zfs, s.config, s.runner, lambda: s.engine, image, specs)
            if hosts_file is None:
                [one] = results
                if one.error is not None:
                    raise one.error
                return single_outcome(s, one, show_secrets)
            return clone_batch_outcome(image, results, show_secrets)

        run(ctx, "clone", action)

    @app.command("list")
    def list_(ctx: typer.Context) -> None:
        """Every host: name, MAC, image@version, mode, used, created."""

        def action(s: Session) -> Outcome:
            state = read_state(s.zfs, s.config)
            hosts = sorted(state.hosts.values(), key=lambda h: h.name)
            targets = [h.get("target") for h in hosts if h.get("target")]
            in_use = s.engine.sessions(targets) if targets else {}
            rows = [host_row(h, in_use) for h in hosts]
            shown = [
                row
                | {
                    "used": human_size(h.dataset.used),
                    "target": row["target"] or "-",
                    "in use": ", ".join(in_use.get(h.get("target"), [])) or "-",
                }
                for row, h in zip(rows, hosts, strict=True)
            ]
            return Outcome(
                rows,
                table(
                    shown,
                    [
                        "name",
                        "mac",
                        "image",
                        "mode",
                        "state",
                        "used",
                        "created",
                        "target",
                        "in use",
                    ],
                ),
            )

        run(ctx, "list", action, changes=False)

    @app.command("show")
    def show(ctx: typer.Context, host: str) -> None:
        """One host's record, restore points and archived states."""

        def action(s: Session) -> Outcome:
            valid = host_name(host)
            h = read_state(s.zfs, s.config).host(valid)
            points = [
                {
                    "name": p.name.split("@")[1],
                    "created": stamp(p.creation),
                    "used": human_size(p.used),
                }
                for p in h.restore_points
            ]
            archives = [
                {
                    "name": leaf(a.name),
                    "archived": a.prop("archived") or "",
                    "used": human_size(a.used),
                }
                for a in h.archives
            ]
            props = h.dataset.record()
            record = {k: props[k] for k in sorted(props, key=record_order)}
            data = {
                "name": h.name,
                "dataset": h.dataset.name,
                "record": record,
                "restore_points": points,
                "archives": archives,
            }
            text = "\n".join(f"{k}: {v}" for k, v in record.items())
            text += "\n\nrestore points:\n" + table(points, ["name", "created", "used"])
            text += "\n\narchived states (zboot prune to remove):\n"
            text += table(archives, ["name", "archived", "used"])
            return Outcome(data, text)

        run(ctx, "show", action, changes=False)

    @app.command("snapshot")
    def snapshot(
        ctx: typer.Context,
        hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
        name: Annotated[
            str | None,
            typer.Option("--name", "-n", help="the restore point's name (default: rp-<UTC time>)"),
        ] = None,
    ) -> None:
        """A restore point of each host's disk, all in one atomic zfs snapshot.
        Example: zboot snapshot pc01 pc02 -n before-update"""

        def action(s: Session) -> Outcome:
            names = list(dict.fromkeys(host_name(h) for h in hosts))
            if name is not None:
                snapshot_name(name)  # bad input stops here, before the server
            point, failed = ops.snapshot_hosts(s.zfs, s.config, names, name)
            if len(names) == 1:
                if failed:
                    raise failed[names[0]]
                return Outcome(
                    {"host": names[0], "restore_point": point},
                    f"restore point {point} of {names[0]}",
                )
            return batch_outcome(
                [HostResult(n, error=failed.get(n)) for n in names],
                "snapshotted",
                {"restore_point": point},
            )

        run(ctx, "snapshot", action)

    @app.command("rollback")
    def rollback(
        ctx: typer.Context,
        hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
        to: Annotated[
            str | None,
            typer.Option(
                "--to",
                metavar="RESTORE-POINT",
                help="a restore point (default: the state it was provisioned in)",
            ),
        ] = None,
        discard: Annotated[
            bool, typer.Option(help="throw the replaced state away instead of archiving it")
        ] = False,
        force: Annotated[
            bool, typer.Option(help="even while the machine is logged in to its disk")
        ] = False,
    ) -> None:
        """Revert hosts' disks, keeping what they replace unless --discard.
        Several hosts: one engine call takes their exports down and one puts
        them back; a host that fails (in use, unknown) fails alone."""

        def action(s: Session) -> Outcome:
            names = list(dict.fromkeys(host_name(h) for h in hosts))
            if to is not None:
                snapshot_name(to)  # bad input stops here, before the server
            plans = roll_back(s, names, to, discard, force)
            if len(plans) == 1:
                [one] = plans
                if one.error is not None:
                    raise one.error
                result = one.result()
                kept = (
                    f"; previous state kept as {leaf(result['archive'])}"
                    if result["archive"]
                    else "; previous state discarded"
                )
                return Outcome(result, f"host {one.host} rolled back to {one.source}{kept}")
            return batch_outcome(
                [
                    HostResult(
                        p.host,
                        {"source": p.source, "archive": p.result()["archive"]},
                        f"kept as {leaf(p.archive)}" if p.result()["archive"] else "discarded",
                        p.error,
                        {"to": shown_source(p)},
                    )
                    for p in plans
                ],
                "rolled back",
                {},
            )

        run(ctx, "rollback", action)

    @app.command("prune")
    def prune(
        ctx: typer.Context, host: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False
    ) -> None:
        """Remove a host's archived states (what rollbacks kept)."""

        def action(s: Session) -> Outcome:
            if not s.dry_run and not confirm(f"remove the archived states of {host}?", yes, s.json):
                return Outcome({"pruned": []}, "nothing removed")
            pruned = ops.prune_host(s.zfs, s.config, host)
            return Outcome(
                {"pruned": pruned},
                f"removed {len(pruned)} archived state{'' if len(pruned) == 1 else 's'}",
            )

        run(ctx, "prune", action)

    @app.command("destroy")
    def destroy(
        ctx: typer.Context,
        hosts: Annotated[list[str], typer.Argument(metavar="HOST...")],
        yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
        force: Annotated[
            bool, typer.Option(help="even while the machine is logged in to its disk")
        ] = False,
    ) -> None:
        """Retire hosts: their exports, disks, restore points and archived states.
        Several hosts: one engine call takes every export down; a host that
        fails (in use, unknown) fails alone."""

        def action(s: Session) -> Outcome:
            names = list(dict.fromkeys(host_name(h) for h in hosts))
            disks = "its disk" if len(names) == 1 else "their disks"
            if not s.dry_run and not confirm(
                f"destroy {', '.join(names)} and {disks}?", yes, s.json
            ):
                return Outcome({"destroyed": []}, "nothing destroyed")
            results = retire(s, names, force)
            if len(results) == 1:
                [one] = results
                if one.error is not None:
                    raise one.error
                return Outcome({"destroyed": one.gone}, f"destroyed host {one.host}")
            return batch_outcome(
                [
                    HostResult(
                        r.host, {"destroyed": r.gone}, ", ".join(leaf(g) for g in r.gone), r.error
                    )
                    for r in results
                ],
                "destroyed",
                {"destroyed": [g for r in results for g in r.gone]},
            )

        run(ctx, "destroy", action)
