"""Host commands: clone, list, show, snapshot (rollback, prune and destroy
are in restore.py).
Each parses its arguments, makes one call into zboot.ops, and renders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..chap import Chap
from ..errors import InvalidInput
from ..names import host_name, human_size, image_name, iqn, size_bytes, snapshot_name
from ..ops import hosts as ops
from ..ops import provision
from ..ops.hostfile import HostSpec, read_hosts
from ..ops.paths import target_iqn
from ..ops.provision import Provisioned
from ..ops.state import Host, leaf
from ..zfs.cli import Dataset
from .batch import HostResult, batch_outcome, one_or_batch
from .images import stamp
from .output import table
from .session import Outcome, Session, run


def host_row(h: Host, in_use: dict[str, list[str]]) -> dict[str, object]:
    return {
        "name": h.name,
        "mac": h.record.mac,
        "image": f"{h.get('image')}@{h.get('version')}",
        "mode": h.record.mode,
        "ephemeral": h.record.ephemeral == "on",
        "state": h.record.state,
        "used": h.dataset.used,
        "created": h.record.created,
        "target": h.record.target or None,
        "in_use": in_use.get(h.record.target, []),
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
    "ephemeral",
    "keep",
    "created",
    "rolled-back",
    "rebased",
    "rebased-from",
    "last-reset",
    "reset-discarded",
    "resets",
)


def record_order(key: str) -> tuple[int, str]:
    """A host's record in the order people read it; unknown keys last."""
    return (RECORD_ORDER.index(key) if key in RECORD_ORDER else len(RECORD_ORDER), key)


def reset_view(h: Host) -> dict[str, object]:
    """Whether the host's boots reset its disk, and its last reset."""
    r = h.record
    discarded = h.get("reset-discarded")
    return {
        "ephemeral": r.ephemeral == "on",
        "keep": r.keep == "on",
        "resets_at_boot": r.resets_at_boot,
        "last_reset": h.get("last-reset") or None,
        "discarded": int(discarded) if discarded.isdigit() else None,
        "resets": int(h.get("resets")) if h.get("resets").isdigit() else 0,
    }


def ephemeral_cell(h: Host) -> str:
    """list's column: "on", "keep" (ephemeral, keeping changes) or "-"."""
    if h.record.ephemeral != "on":
        return "-"
    return "keep" if h.record.keep == "on" else "on"


def reset_text(view: dict[str, object]) -> str:
    boots = (
        "ephemeral: each boot starts from the image version"
        if view["resets_at_boot"]
        else "ephemeral, keeping changes until keep off"
        if view["ephemeral"]
        else "not ephemeral"
    )
    if not view["last_reset"]:
        return f"{boots}; never reset"
    shown = human_size(d) if isinstance(d := view["discarded"], int) else "unknown"
    return f"{boots}; last reset {view['last_reset']} ({shown} discarded), {view['resets']} in all"


def chap_view(chap: Chap | None, show_secrets: bool) -> dict[str, str | None] | None:
    """CHAP as output shows it: the users, and the secrets only when asked for."""
    if chap is None:
        return None
    view: dict[str, str | None] = {"user": chap.user, "mutual_user": chap.mutual_user}
    if show_secrets:
        view |= {"secret": chap.secret, "mutual_secret": chap.mutual_secret}
    return view


def single_outcome(s: Session, one: Provisioned, show_secrets: bool) -> Outcome:
    record = one.record or {}
    text = f"host {one.host} cloned from {record.get('origin')}"
    if s.context.engine.name != "none":
        text += (
            f"; exported as {target_iqn(s.config, one.host)} LUN {s.context.engine.lun} to "
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


# iPXE's BIOS disk emulation has no whole cylinder below about 8M, and a
# firmware addressing the disk by cylinders cannot use it
MIN_DATA_DISK = 8 << 20


def data_disk_spec(size: str | None, image: str | None) -> provision.DataDisk | None:
    """--data-disk SIZE or --data-image IMAGE[@VERSION] (not both) as what
    provisioning makes."""
    if size is not None and image is not None:
        raise InvalidInput(
            "give --data-disk SIZE or --data-image IMAGE, not both",
            hint="a data disk is either empty or a clone of an image",
        )
    if size is not None:
        # a zvol's size is a whole number of its blocks: whole MiB always is
        mib = 1 << 20
        wanted = -(-size_bytes(size) // mib) * mib
        if wanted < MIN_DATA_DISK:
            raise InvalidInput(
                f"a data disk of {size} is too small: 8M at least",
                hint="give a size with a unit, e.g. --data-disk 100G",
            )
        return provision.DataDisk(size=wanted)
    if image is not None:
        name, at, version = image.partition("@")
        image_name(name)
        if at:
            snapshot_name(version)
        return provision.DataDisk(source=image)
    return None


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
    ephemeral: Annotated[
        bool,
        typer.Option(
            "--ephemeral", help="each boot starts from the image version (zboot ephemeral)"
        ),
    ] = False,
    data_disk: Annotated[
        str | None,
        typer.Option(
            "--data-disk",
            metavar="SIZE",
            help="give each host an empty data disk of SIZE (e.g. 100G), kept across "
            "rollback, rebase and resets",
        ),
    ] = None,
    data_image: Annotated[
        str | None,
        typer.Option(
            "--data-image",
            metavar="IMAGE[@VERSION]",
            help="give each host a data disk cloned from this image (e.g. games)",
        ),
    ] = None,
) -> None:
    """Provision a host (or a batch) from an image version (latest when omitted).
    Example: zboot clone win11 pc01 --mac 52:54:00:12:34:01"""

    def action(s: Session) -> Outcome:
        data = data_disk_spec(data_disk, data_image)
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
        results = provision.clone(s.context, image, specs, ephemeral, data)
        return one_or_batch(
            results,
            lambda one: single_outcome(s, one, show_secrets),
            lambda all_: clone_batch_outcome(image, all_, show_secrets),
            batched=hosts_file is not None,
        )

    run(ctx, "clone", action)


def list_(ctx: typer.Context) -> None:
    """Every host: name, MAC, image@version, mode, used, created."""

    def action(s: Session) -> Outcome:
        listing = ops.list_hosts(s.context)
        hosts, in_use = listing.hosts, listing.in_use
        rows = [host_row(h, in_use) for h in hosts]
        shown = [
            row
            | {
                "used": human_size(h.dataset.used),
                "ephemeral": ephemeral_cell(h),
                "target": row["target"] or "-",
                "in use": ", ".join(in_use.get(h.record.target, [])) or "-",
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
                    "ephemeral",
                    "state",
                    "used",
                    "created",
                    "target",
                    "in use",
                ],
            ),
        )

    # the engine is asked only who is logged in: a shell reading a few files
    # on the server, quicker without the session agent and its rtslib
    run(ctx, "list", action, changes=False, engine=False)


def data_disk_view(data: Dataset | None) -> dict[str, str] | None:
    """The host's data disk for show: where it is, how big, what it came from."""
    if data is None:
        return None
    return {
        "dataset": data.name,
        "size": human_size(data.volsize or 0),
        "used": human_size(data.used),
        "origin": data.prop("origin") or "",
        "created": data.prop("created") or "",
    }


def data_disk_text(view: dict[str, str] | None) -> str:
    if view is None:
        return "data disk: none"
    source = f", a clone of {leaf(view['origin'])}" if view["origin"] else ", empty when made"
    return f"data disk: {view['dataset']} ({view['size']}, {view['used']} used{source})"


def show(ctx: typer.Context, host: str) -> None:
    """One host's record, restore points and archived states."""

    def action(s: Session) -> Outcome:
        view = ops.show_host(s.context, host_name(host))
        h = view.host
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
        record = {k: props[k] for k in sorted(props, key=record_order) if props[k]}
        resets = reset_view(h)
        disk = data_disk_view(view.data)
        data = {
            "name": h.name,
            "dataset": h.dataset.name,
            "record": record,
            "ephemeral": resets,
            "restore_points": points,
            "archives": archives,
            "data_disk": disk,
        }
        text = "\n".join(f"{k}: {v}" for k, v in record.items())
        text += "\n" + reset_text(resets)
        text += "\n" + data_disk_text(disk)
        text += "\n\nrestore points:\n" + table(points, ["name", "created", "used"])
        text += "\n\narchived states (zboot prune to remove):\n"
        text += table(archives, ["name", "archived", "used"])
        return Outcome(data, text)

    run(ctx, "show", action, changes=False)


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
        wanted = snapshot_name(name) if name is not None else None  # before the server
        point, failed = ops.snapshot_hosts(s.context.zfs, s.config, names, wanted)
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

    run(ctx, "snapshot", action, engine=False)


def register(app: typer.Typer) -> None:
    for name, command in (
        ("clone", clone),
        ("list", list_),
        ("show", show),
        ("snapshot", snapshot),
    ):
        app.command(name)(command)
