"""ZFS channel programs (`zfs program`, Lua run in the kernel in one
transaction group): the changes of a batch that ZFS can make together.
`zfs destroy` waits for a transaction group each time (about 0.35 s on the
lab's emulated server); a program destroying every dataset of a batch waits
once. Channel programs cannot clone or rename a dataset, so clones and
rollbacks go through `zfs` commands (remote.chains)."""

from __future__ import annotations

import errno
import json
from collections.abc import Sequence

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
