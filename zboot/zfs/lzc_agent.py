"""zboot's ZFS agent: a batch's clones, renames and promotes made through
libzfs_core (Debian's python3-pyzfs) on the storage server, by one Python
process (zboot's session agent, where it runs) instead of a `zfs` process
per change. Standard library and libzfs_core only: it is shipped as text,
not installed (see zboot.targets.agent).

REQUEST: {"chains": [[change, ...], ...], "concurrent": N}, a change being
{"verb": "clone" | "rename" | "promote", "names": [...], "props": {key:
value}} (clone: snapshot, target; rename: old, new; props with their full
keys). Wave by wave, as zboot.zfs.lzc.LzcZfs runs chains where zboot runs
on the server: the n-th change of every chain still going, N at once (ZFS
makes the changes that wait together in one transaction group); a chain
stops at its first failure, the others go on.

Prints one answer per chain, as JSON: null, or [step, errno, error's
name, message]. Exits NO_LIBRARY, having changed nothing, when
libzfs_core cannot be imported or cannot open /dev/zfs."""

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

NO_LIBRARY = 3

try:
    import libzfs_core  # type: ignore[import-untyped,import-not-found,unused-ignore]

    libzfs_core.lzc_exists(b"zboot-probe")  # opens /dev/zfs: fails here, not mid-batch
except Exception as exc:  # not there, or it cannot start (ZFSInitializationFailed)
    print(f"no usable libzfs_core: {type(exc).__name__} {exc}", file=sys.stderr)
    raise SystemExit(NO_LIBRARY) from None


def apply(change: dict[str, Any]) -> None:
    verb, names = change["verb"], [n.encode() for n in change["names"]]
    if verb == "clone":
        props = {k.encode(): v.encode() for k, v in change.get("props", {}).items()}
        libzfs_core.lzc_clone(names[1], names[0], props)
    elif verb == "rename":
        libzfs_core.lzc_rename(names[0], names[1])
    elif verb == "promote":
        libzfs_core.lzc_promote(names[0])
    else:
        raise ValueError(f"no such change {verb!r}")


def attempt(change: dict[str, Any]) -> list[Any] | None:
    """None, or [errno, error's name, message] of what went wrong."""
    try:
        apply(change)
    except libzfs_core.exceptions.ZFSError as err:
        return [getattr(err, "errno", 0) or 0, type(err).__name__, str(err)]
    return None


def run(chains: list[list[dict[str, Any]]], concurrent: int) -> list[list[Any] | None]:
    outcomes: list[list[Any] | None] = [None] * len(chains)
    with ThreadPoolExecutor(max(1, concurrent)) as pool:
        for step in range(max((len(c) for c in chains), default=0)):
            wave = [n for n, c in enumerate(chains) if step < len(c) and outcomes[n] is None]
            changes = [chains[n][step] for n in wave]
            for n, failed in zip(wave, pool.map(attempt, changes), strict=True):
                if failed is not None:
                    outcomes[n] = [step, *failed]
    return outcomes


def main() -> None:
    request = json.loads(REQUEST)  # type: ignore[name-defined]  # noqa: F821
    json.dump(run(request["chains"], int(request.get("concurrent", 16))), sys.stdout)


if __name__ == "zboot_lzc_agent":
    main()
