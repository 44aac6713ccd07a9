"""zboot's tgt agent: runs on the storage server with the distribution's
python3, one process per batch, shipped on stdin like the LIO agent (see
agent.py), standard library only. It manages tgt's CHAP accounts by talking
to tgtd's management socket itself, as tgtadm does, so that no secret is ever
on a command line.

The protocol, as read in tgt 1.0.85 (the tag v1.0.85 of github.com/fujita/tgt:
usr/tgtadm.h, usr/tgtadm.c, usr/mgmt.c, usr/concat_buf.c, usr/target.c):
one request per connection to the AF_UNIX stream socket
/var/run/tgtd/socket.<control port>. The client sends `struct tgtadm_req`
(120 bytes, native byte order, no padding) followed by a parameter string
with its terminating NUL; `len` is the size of both together. tgtd answers
`struct tgtadm_rsp` (err, len: 8 bytes, len counting itself) and any text,
then closes. tgtd only serves a peer with its own uid and gid (root).

Account requests (mode ACCOUNT) take `user=U` (and for OP_NEW `,password=P`,
tgtd splitting at the first comma after `user=`); OP_BIND with the target's
tid and `ac_dir` OUTGOING for the target's own (mutual) account."""

from __future__ import annotations

import json
import socket
import struct
import sys
from typing import Any

# enum tgtadm_op, enum tgtadm_mode, enum tgtadm_account_dir (usr/tgtadm.h)
OP_NEW, OP_DELETE, OP_SHOW, OP_BIND = 0, 1, 2, 3
MODE_ACCOUNT = 7
ACCOUNT_TYPE_INCOMING, ACCOUNT_TYPE_OUTGOING = 0, 1
# struct tgtadm_req: mode, op, lld[64], len, tid, sid, lun, cid, host_no,
# device_type, ac_dir, pack, force
REQ = struct.Struct("=ii64sIiQQIIIIII")
RSP = struct.Struct("=II")  # struct tgtadm_rsp: err, len
NO_TID = -1  # tgtadm's "no --tid given"
NO_LUN = (1 << 64) - 1  # tgtadm's "no --lun given" (UINT64_MAX)
MAX_PARAMS = 8 * 1024  # MAX_MGT_BUFSIZE in usr/mgmt.c: tgtd drops longer requests

# enum tgtadm_errno (usr/tgtadm_error.h), the ones worth a name
ERRORS = {
    1: "unknown error",
    2: "out of memory",
    3: "no such driver",
    4: "no such target",
    14: "the account already exists",
    15: "no such account",
    16: "too many accounts",
    17: "invalid request",
    18: "the target already has an outgoing account",
    22: "unsupported operation",
}
TGTADM_USER_EXIST, TGTADM_NO_USER = 14, 15


class TgtError(Exception):
    def __init__(self, what: str, err: int) -> None:
        super().__init__(f"{what}: {ERRORS.get(err, 'error')} (tgtadm error {err})")
        self.err = err


def pack_request(
    op: int, params: str, tid: int = NO_TID, ac_dir: int = ACCOUNT_TYPE_INCOMING
) -> bytes:
    """One account request, header and parameters, as tgtadm would send it
    for `--lld iscsi --mode account` (the fields tgtadm leaves at their
    defaults are sent the same way)."""
    body = params.encode() + b"\0" if params else b""
    if len(body) > MAX_PARAMS:
        raise ValueError("account request too long for tgtd")
    header = REQ.pack(
        MODE_ACCOUNT, op, b"iscsi", REQ.size + len(body), tid, 0, NO_LUN, 0, 0, 0, ac_dir, 0, 0
    )
    return header + body


def check_name(user: str) -> None:
    # tgtd finds the user after "user=" and ends it at the next comma.
    if not user or any(c in user for c in ",\0=") or user != user.strip():
        raise ValueError(f"unusable tgt account name {user!r}")


def new_params(user: str, secret: str) -> str:
    check_name(user)
    if not secret or "\0" in secret:
        raise ValueError(f"unusable secret for tgt account {user!r}")
    return f"user={user},password={secret}"


def call(path: str, request: bytes, what: str) -> bytes:
    """Send one request, return the text of a successful answer; TgtError
    (naming what, never the request) otherwise."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(60)
        try:
            sock.connect(path)
        except OSError as failure:
            raise RuntimeError(f"{what}: cannot reach tgtd at {path}: {failure.strerror}") from None
        sock.sendall(request)
        status, length = RSP.unpack(recv_exactly(sock, RSP.size, what))
        if status != 0:
            raise TgtError(what, status)
        return recv_exactly(sock, length - RSP.size, what) if length > RSP.size else b""


def recv_exactly(sock: socket.socket, size: int, what: str) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise RuntimeError(f"{what}: tgtd closed the connection (not root?)")
        data += chunk
    return data


def delete_account(path: str, user: str, missing_ok: bool) -> bool:
    check_name(user)
    try:
        call(path, pack_request(OP_DELETE, f"user={user}"), f"deleting account {user}")
    except TgtError as err:
        if missing_ok and err.err == TGTADM_NO_USER:
            return False
        raise
    return True


def add_account(path: str, tid: int, user: str, secret: str, outgoing: bool) -> None:
    """Make the account afresh (its name is the host's own) and bind it to tid."""
    delete_account(path, user, missing_ok=True)
    call(path, pack_request(OP_NEW, new_params(user, secret)), f"creating account {user}")
    direction = ACCOUNT_TYPE_OUTGOING if outgoing else ACCOUNT_TYPE_INCOMING
    call(
        path,
        pack_request(OP_BIND, f"user={user}", tid=tid, ac_dir=direction),
        f"binding account {user} to target {tid}" + (" (outgoing)" if outgoing else ""),
    )


def main(request: dict[str, Any]) -> dict[str, Any]:
    path = request["socket"]
    deleted = [
        user for user in request.get("delete", []) if delete_account(path, user, missing_ok=True)
    ]
    for account in request.get("add", []):
        add_account(
            path, int(account["tid"]), account["user"], account["secret"], bool(account["outgoing"])
        )
    return {"added": [a["user"] for a in request.get("add", [])], "deleted": deleted}


if __name__ == "zboot_tgt_agent":
    try:
        answer = main(json.loads(REQUEST))  # type: ignore[name-defined]  # noqa: F821
    except (TgtError, RuntimeError, ValueError) as failure:
        raise SystemExit(f"tgt: {failure}") from None
    json.dump(answer, sys.stdout)
