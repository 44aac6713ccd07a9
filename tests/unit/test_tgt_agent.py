"""The tgt agent's requests to tgtd's management socket, byte for byte.

The layout is tgt 1.0.85's (tag v1.0.85 of github.com/fujita/tgt):
`struct tgtadm_req` in usr/tgtadm.h (mode, op, lld[64], len, tid, sid, lun,
cid, host_no, device_type, ac_dir, pack, force: 120 bytes, no padding), the
enums in usr/tgtadm.h and usr/tgtadm_error.h, the parameter string with its
NUL as built in usr/tgtadm.c (concat_buf_finish in usr/concat_buf.c counts
the NUL), parsed by account_mgmt() in usr/mgmt.c. The samples were captured
from Debian 12's own tgtadm (samples/tgtadm_account_requests.txt)."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from agents import imported_modules

from zboot.targets import agent
from zboot.targets.tgt import AGENT
from zboot.targets.tgt_agent import (
    ACCOUNT_TYPE_OUTGOING,
    OP_BIND,
    OP_DELETE,
    OP_NEW,
    REQ,
    TgtError,
    add_account,
    main,
    new_params,
    pack_request,
)

SAMPLES = Path(__file__).parent / "samples" / "tgtadm_account_requests.txt"
little_endian = pytest.mark.skipif(
    sys.byteorder != "little", reason="the samples are from an amd64 server"
)


def captured() -> dict[str, bytes]:
    found = {}
    for line in SAMPLES.read_text().splitlines():
        if line and not line.startswith("#"):
            args, hexed = line.split("\t")
            found[args] = bytes.fromhex(hexed)
    return found


def u32(n: int) -> bytes:
    return (n & 0xFFFFFFFF).to_bytes(4, "little")


def header(mode: int, op: int, length: int, tid: int, ac_dir: int) -> bytes:
    """struct tgtadm_req written out field by field (little-endian), as a
    check on the agent's struct format."""
    return (
        u32(mode)
        + u32(op)
        + b"iscsi".ljust(64, b"\0")
        + u32(length)
        + u32(tid)
        + bytes(8)  # sid
        + b"\xff" * 8  # lun: UINT64_MAX, tgtadm's "none"
        + bytes(12)  # cid, host_no, device_type (TYPE_DISK = 0)
        + u32(ac_dir)
        + bytes(8)
    )  # pack, force


def test_the_request_header_is_120_bytes() -> None:
    assert REQ.size == 120


@little_endian
def test_new_account_is_what_tgtadm_sends() -> None:
    params = b"user=iqn.2010-04.org.ipxe:pct1,password=Sample0Secret123\0"
    packed = pack_request(OP_NEW, new_params("iqn.2010-04.org.ipxe:pct1", "Sample0Secret123"))
    assert packed == header(7, 0, 120 + len(params), -1, 0) + params
    assert (
        packed
        == captured()[
            "--mode account --op new --user iqn.2010-04.org.ipxe:pct1 --password Sample0Secret123"
        ]
    )


@little_endian
def test_bind_incoming_and_outgoing_are_what_tgtadm_sends() -> None:
    samples = captured()
    incoming = pack_request(OP_BIND, "user=iqn.2010-04.org.ipxe:pct1", tid=7)
    assert incoming == header(7, 3, 120 + 31, 7, 0) + b"user=iqn.2010-04.org.ipxe:pct1\0"
    assert incoming == samples["--mode account --op bind --tid 7 --user iqn.2010-04.org.ipxe:pct1"]
    outgoing = pack_request(
        OP_BIND, "user=iqn.2026-11.lab.zboot:pct1", tid=7, ac_dir=ACCOUNT_TYPE_OUTGOING
    )
    assert outgoing[:120] == header(7, 3, 120 + 32, 7, 1)
    assert (
        outgoing
        == samples["--mode account --op bind --tid 7 --user iqn.2026-11.lab.zboot:pct1 --outgoing"]
    )


@little_endian
def test_delete_account_is_what_tgtadm_sends() -> None:
    packed = pack_request(OP_DELETE, "user=iqn.2010-04.org.ipxe:pct1")
    assert packed == header(7, 1, 120 + 31, -1, 0) + b"user=iqn.2010-04.org.ipxe:pct1\0"
    assert packed == captured()["--mode account --op delete --user iqn.2010-04.org.ipxe:pct1"]


@pytest.mark.parametrize("user", ["", "a,b", "a=b", " a"])
def test_names_tgtd_would_misread_are_refused(user: str) -> None:
    with pytest.raises(ValueError, match="unusable tgt account name"):
        new_params(user, "secret")


# --- against a fake tgtd ------------------------------------------------------


class FakeTgtd:
    """Answers each connection with the next status from `answers` (0 when
    they run out) and records the requests, as tgtd does: one per connection."""

    def __init__(self, path: Path, answers: list[int]) -> None:
        self.path = str(path)
        self.answers = answers
        self.requests: list[tuple[int, int, int, int, bytes]] = []  # op, tid, ac_dir, params
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while len(head) < 120:
                    head += conn.recv(120 - len(head))
                mode, op, _lld, length, tid, *_, ac_dir, _pack, _force = REQ.unpack(head)
                body = b""
                while len(body) < length - 120:
                    body += conn.recv(length - 120 - len(body))
                self.requests.append((mode, op, tid, ac_dir, body))
                status = self.answers.pop(0) if self.answers else 0
                conn.sendall(struct.pack("=II", status, 8))

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[FakeTgtd]:
    fake = FakeTgtd(tmp_path / "socket.0", answers=[])
    yield fake
    fake.close()


def test_an_account_is_made_afresh_then_bound(tgtd: FakeTgtd) -> None:
    tgtd.answers[:] = [15]  # the first delete: "can't find the account", fine
    add_account(tgtd.path, 4, "iqn.x:i", "Secret0123456789", outgoing=False)
    assert [(op, tid, ac_dir, body) for _mode, op, tid, ac_dir, body in tgtd.requests] == [
        (OP_DELETE, -1, 0, b"user=iqn.x:i\0"),
        (OP_NEW, -1, 0, b"user=iqn.x:i,password=Secret0123456789\0"),
        (OP_BIND, 4, 0, b"user=iqn.x:i\0"),
    ]
    assert {mode for mode, *_ in tgtd.requests} == {7}


def test_a_failure_names_the_operation_and_not_the_secret(tgtd: FakeTgtd) -> None:
    tgtd.answers[:] = [0, 0, 18]  # bind: the target already has an outgoing account
    with pytest.raises(TgtError) as failure:
        add_account(tgtd.path, 4, "iqn.x:t", "Secret0123456789", outgoing=True)
    assert str(failure.value) == (
        "binding account iqn.x:t to target 4 (outgoing): the target "
        "already has an outgoing account (tgtadm error 18)"
    )


def test_main_deletes_and_adds(tgtd: FakeTgtd) -> None:
    tgtd.answers[:] = [15, 0]  # "gone" is missing, "old" is deleted
    answer = main(
        {
            "socket": tgtd.path,
            "delete": ["gone", "old"],
            "add": [{"tid": 1, "user": "u", "secret": "s", "outgoing": False}],
        }
    )
    assert answer == {"added": ["u"], "deleted": ["old"]}
    assert len(tgtd.requests) == 5


def test_shipped_on_stdin_it_runs_and_fails_without_the_secret(tgtd: FakeTgtd) -> None:
    """The agent as the engine ships it: the bootstrap in argv, source and
    request on stdin, through this machine's python3."""
    request = {
        "socket": tgtd.path,
        "add": [{"tid": 2, "user": "iqn.x:i", "secret": "Secret0123456789", "outgoing": False}],
    }
    argv = [sys.executable, "-c", agent.bootstrap("tgt")]
    done = subprocess.run(
        argv, input=agent.payload(AGENT, request), capture_output=True, timeout=60, check=True
    )
    assert json.loads(done.stdout) == {"added": ["iqn.x:i"], "deleted": []}
    assert len(tgtd.requests) == 3
    tgtd.answers[:] = [0, 14]  # a concurrent create: "this account already exists"
    failed = subprocess.run(
        argv, input=agent.payload(AGENT, request), capture_output=True, timeout=60
    )
    assert failed.returncode == 1
    assert failed.stderr.decode().strip() == (
        "tgt: creating account iqn.x:i: the account already exists (tgtadm error 14)"
    )
    assert "Secret0123456789" not in " ".join(argv)


def test_the_agent_needs_only_the_standard_library() -> None:
    assert imported_modules(AGENT) <= {"__future__", "json", "socket", "struct", "sys", "typing"}
