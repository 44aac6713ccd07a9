"""ZFS channel programs (`zfs program`, Lua run in the kernel in one
transaction group): the changes of a batch that ZFS can make together.
`zfs destroy` waits for a transaction group each time (about 0.35 s on the
lab's emulated server), and so does `zfs set` for each dataset it names; a
program destroying, or setting the properties of, every dataset of a batch
waits once. Channel programs cannot clone or rename a dataset, so clones and
renames go through `zfs` commands (remote.chains)."""

from __future__ import annotations

import errno
import json
from collections.abc import Mapping, Sequence

from ..errors import Conflict, NotFound, ServerError, ZbootError

# Each dataset named (with its snapshots) in order; a failure does not stop
# the others. Returns {dataset: 0 or the errno of the step that failed}.
DESTROY = """\
local names = (...)["argv"]
local result = {}
for _, name in ipairs(names) do
  local err = 0
  if not zfs.exists(name) then
    err = 2
  else
    local snaps = {}
    for snap in zfs.list.snapshots(name) do
      snaps[#snaps + 1] = snap
    end
    for _, snap in ipairs(snaps) do
      if err == 0 then err = zfs.sync.destroy(snap) end
    end
    if err == 0 then err = zfs.sync.destroy(name) end
  end
  result[name] = err
end
return result
"""


def destroy_argv(pool: str, names: Sequence[str]) -> list[str]:
    """The program comes on stdin (no temporary file on the server)."""
    return ["zfs", "program", "-j", pool, "/dev/stdin", *names]


def error_for(name: str, code: int) -> ZbootError | None:
    if code == 0:
        return None
    if code == errno.ENOENT:
        return NotFound(f"cannot destroy '{name}': dataset does not exist")
    if code in (errno.EBUSY, errno.EEXIST):
        return Conflict(
            f"cannot destroy '{name}': dataset is busy or has dependent clones "
            f"({errno.errorcode.get(code, code)})"
        )
    return ServerError(f"cannot destroy '{name}': {errno.errorcode.get(code, code)}")


def parse_destroyed(output: str, names: Sequence[str]) -> dict[str, ZbootError | None]:
    """`zfs program -j` prints {"return": {dataset: errno}}."""
    try:
        codes = json.loads(output)["return"]
        return {name: error_for(name, int(codes[name])) for name in names}
    except (ValueError, KeyError, TypeError) as err:
        raise ServerError(
            f"zfs program printed something unexpected ({err}): {output.strip()[:300]}"
        ) from err


# Each dataset's user properties, set in one transaction group. The arguments
# are, per dataset: its name, how many properties follow, then each as
# key=value. Returns {position of the dataset in the arguments (1, 2, ...):
# 0 or the errno of the first property that failed}, or NO_SET_PROP on a ZFS
# whose programs cannot set properties (zfs.sync.set_prop came after
# channel programs themselves), having changed nothing.
NO_SET_PROP = "no zfs.sync.set_prop"
SET_PROPS = """\
local args = (...)["argv"]
if zfs.sync.set_prop == nil then return "no zfs.sync.set_prop" end
local result = {}
local i, n = 1, 0
while i <= #args do
  local name, count = args[i], tonumber(args[i + 1])
  local err = 0
  n = n + 1
  if not zfs.exists(name) then err = 2 end
  for j = 1, count do
    local key, value = string.match(args[i + 1 + j], "^([^=]+)=(.*)$")
    if err == 0 then err = zfs.sync.set_prop(name, key, value) end
  end
  result[tostring(n)] = err
  i = i + 2 + count
end
return result
"""

# The arguments of one program at most: over SSH the whole command line is
# one argument of the remote shell, which Linux caps at 128 KiB.
MAX_ARGS = 64 << 10

Props = tuple[str, Mapping[str, str]]  # a dataset, {full property name: value}


def set_args(name: str, values: Mapping[str, str]) -> list[str]:
    return [name, str(len(values)), *(f"{k}={v}" for k, v in values.items())]


def set_props_argv(pool: str, props: Sequence[Props]) -> list[str]:
    """`zfs program` setting each (dataset, {full property name: value})."""
    argv = ["zfs", "program", "-j", pool, "/dev/stdin"]
    for name, values in props:
        argv += set_args(name, values)
    return argv


def set_batches(props: Sequence[Props]) -> list[tuple[str, list[int]]]:
    """The programs that set props: each its pool and the positions in props
    of the datasets it sets, its arguments within MAX_ARGS (one dataset's
    own may go over: it gets a program to itself)."""
    batches: list[tuple[str, list[int]]] = []
    size: dict[str, int] = {}
    current: dict[str, list[int]] = {}
    for i, (name, values) in enumerate(props):
        pool = name.split("/")[0]
        length = sum(len(arg) + 1 for arg in set_args(name, values))
        if current.get(pool) and size[pool] + length > MAX_ARGS:
            batches.append((pool, current.pop(pool)))
        if pool not in current:
            current[pool], size[pool] = [], 0
        current[pool].append(i)
        size[pool] += length
    return batches + list(current.items())


def parse_set(output: str, names: Sequence[str]) -> list[ZbootError | None] | None:
    """Each dataset's outcome, in the order given; None: this ZFS's programs
    cannot set properties (NO_SET_PROP), nothing was set."""
    try:
        codes = json.loads(output)["return"]
        if codes == NO_SET_PROP:
            return None
        found = [int(codes[str(n)]) for n in range(1, len(names) + 1)]
    except (ValueError, KeyError, TypeError) as err:
        raise ServerError(
            f"zfs program printed something unexpected ({err}): {output.strip()[:300]}"
        ) from err
    return [_set_error(name, code) for name, code in zip(names, found, strict=True)]


def _set_error(name: str, code: int) -> ZbootError | None:
    if code == 0:
        return None
    if code == errno.ENOENT:
        return NotFound(f"cannot set properties of '{name}': dataset does not exist")
    return ServerError(f"cannot set properties of '{name}': {errno.errorcode.get(code, code)}")
