"""`zboot serve` on the lab's storage server, without boot clients: what it
hands out and to whom, and what hostile requests do to it.

- No host's CHAP secret is readable by another MAC's request (a request from
  the server itself has no neighbour entry for the host's MAC: refused), by a
  directory listing, or from any file that is not root's alone.
- The hostile-request suite: 240 generated requests (bad methods, paths with
  `..`, malformed and multicast MACs, overlong URLs, bad queries, garbage) sent
  over real sockets get only 4xx (or a closed connection) and change nothing:
  zboot's ZFS records and LIO's saved configuration are the same afterwards.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from zboot_cli import Zboot, zboot_root
from zboot_lab import service
from zboot_lab.layout import LAN_SERVER, Layout
from zboot_lab.remote import ssh, ssh_text

pytestmark = pytest.mark.lab

A = "52:54:00:5f:00:01"
PATH = "/52-54-00-5f-00-01.ipxe"
LIO_SAVED = "/etc/rtslib-fb-target/saveconfig.json"
# Sends each request (hex) to the service and prints what came back first.
SENDER = f"""
import json, socket, sys
out = []
for raw in json.load(sys.stdin):
    s = socket.create_connection(("{LAN_SERVER}", {service.PORT}), timeout=10)
    got = b""
    try:
        s.sendall(bytes.fromhex(raw))
        s.shutdown(socket.SHUT_WR)
        while chunk := s.recv(65536):
            got += chunk
    except OSError:
        pass
    s.close()
    out.append(got.decode("latin-1"))
print(json.dumps(out))
"""


def send(lab: Layout, requests: list[bytes]) -> list[str]:
    """The service's answers, from a client on the server itself."""
    stdin = json.dumps([r.hex() for r in requests]).encode()
    answers: list[str] = json.loads(
        ssh(lab, ["python3", "-c", SENDER], stdin=stdin, timeout=300).stdout
    )
    return answers


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {LAN_SERVER}\r\nConnection: close\r\n\r\n".encode()


@pytest.fixture(scope="module")
def served(
    lab_session: Layout, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Zboot, str]]:
    """A CHAP host in a root whose scripts come from the service; its secret.
    One root and one service for the module: neither test changes them."""
    work = tmp_path_factory.mktemp("serve")
    with zboot_root(lab_session, work) as zboot:
        config = Path(zboot.env["ZBOOT_CONFIG"])
        config.write_text(service.client_config(config.read_text()))
        zboot("init")
        zboot("image", "create", "gold", "--size", "8M")
        zboot("image", "snapshot", "gold")
        host = zboot("clone", "gold", "pcsec", "--mac", A, "--chap", "--show-secrets")["data"]
        with service.serving(lab_session, config):
            yield zboot, host["chap_credentials"]["secret"]


def status(answer: str) -> int | None:
    parts = answer.split(maxsplit=2)
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith("HTTP/") else None


def records(lab: Layout, root: str) -> str:
    """zboot's records (every org.zboot property) and LIO's saved set-up."""
    props = ssh_text(
        lab, ["sh", "-c", f"zfs get -Hp -r -s local -o name,property,value all {root}"]
    )
    return props + ssh_text(lab, ["cat", LIO_SAVED])


def test_no_secret_reaches_another_mac_a_listing_or_a_readable_file(
    lab: Layout, served: tuple[Zboot, str]
) -> None:
    _, secret = served
    answers = send(lab, [get(PATH), get("/"), get("/secrets/"), get("/pcsec"), get(PATH + "/")])
    assert [status(a) for a in answers] == [403, 404, 404, 404, 404], answers
    assert not any(secret in a for a in answers)
    script = "/srv/zboot/boot/" + PATH.lstrip("/")
    assert ssh(lab, ["test", "-e", script], check=False).returncode == 1, "no script file"
    holders = ssh_text(
        lab,
        [
            "sh",
            "-c",
            'grep -rlF -- "$1" /srv /run /var/log /etc 2>/dev/null | '
            "xargs -r stat -c '%a %U %n'; true",
            "sh",
            secret,
        ],
    ).splitlines()
    assert holders, "the secret file itself should hold the secret"
    for line in holders:
        mode, owner, _ = line.split(maxsplit=2)
        assert owner == "root" and mode == "600", line
    assert secret not in service.log(lab)


def hostile_requests(seed: int, count: int) -> list[bytes]:
    """Requests the service must refuse, each bad in one way."""
    rng = random.Random(seed)  # noqa: S311 (a repeatable test, not a secret)
    macs = [
        "01-00-5e-00-00-01",
        "00-00-00-00-00-00",
        "52-54-00-5f-00",
        "52:54:00:5f:00:01",
        "zz-54-00-5f-00-01",
        "52-54-00-5f-00-01-02",
        "ff-ff-ff-ff-ff-ff",
    ]
    paths = [
        lambda: "/../" * rng.randint(1, 5) + "etc/shadow",
        lambda: PATH + "/.." * rng.randint(1, 3),
        lambda: "/%2e%2e/" * rng.randint(1, 4) + "srv/zboot-secrets",
        lambda: "/" + rng.choice(macs) + ".ipxe",
        lambda: "/" + "a" * rng.randint(2100, 9000),
        lambda: "/" + "".join(rng.choice("0123456789abcdef-") for _ in range(rng.randint(1, 30))),
        lambda: (
            PATH
            + "?"
            + rng.choice(
                [
                    "color=red",
                    "uuid=1&uuid=2",
                    "&&",
                    "serial=%0a",
                    "serial=" + "x" * rng.randint(65, 500),
                    "a=%ff",
                ]
            )
        ),
        lambda: "//" + PATH.lstrip("/"),
        lambda: "/" + "".join(chr(rng.randint(0x21, 0x7E)) for _ in range(rng.randint(1, 40))),
    ]
    out: list[bytes] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.15:
            method = rng.choice(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "get"])
            out.append(f"{method} {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        elif kind < 0.25:
            out.append(bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 300))) + b"\r\n\r\n")
        else:
            out.append(get(rng.choice(paths)()))
    return out


def test_hostile_requests_get_only_4xx_and_change_nothing(
    lab: Layout, served: tuple[Zboot, str]
) -> None:
    zboot, _ = served
    before = records(lab, zboot.root)
    requests = hostile_requests(18, 240)
    answers = send(lab, requests)
    for request, answer in zip(requests, answers, strict=True):
        code = status(answer)
        assert code is None or 400 <= code < 500, (request[:80], answer[:200])
    assert sum(status(a) is not None for a in answers) >= 200, "most must get an answer"
    assert records(lab, zboot.root) == before
    assert "Traceback" not in service.log(lab)
