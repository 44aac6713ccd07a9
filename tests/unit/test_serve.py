"""`zboot serve`'s HTTP front, without the storage: the request rules, the
hostile-request suite (Hypothesis: at least 200 generated bad requests, each
answered 4xx without the workflow ever being asked), the MAC check, the
batcher, and the application under a real waitress on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
import waitress
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_hostile_inputs import hostile

from zboot.boot.ipxe import FACTS
from zboot.names import MacAddress
from zboot.ops.boot_service import Answer, Asked
from zboot.serve.app import BootApp
from zboot.serve.batcher import Batcher
from zboot.serve.request import MAX_FACT, MAX_URI, HttpError, facts, parse, prefix_of

MAC = MacAddress("52:54:00:12:34:56")
PATH = "/52-54-00-12-34-56.ipxe"
EXAMPLES = 250
HOSTILE = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class Front:
    """A BootApp whose workflow only records what it was asked."""

    def __init__(self, sender: str | None = MAC, check_mac: bool = True) -> None:
        self.asked: list[Asked] = []
        self.logged: list[str] = []
        self.sender = sender
        self.app = BootApp(
            self.ask, lambda _address: self.sender, self.logged.append, "/", check_mac
        )

    def ask(self, asked: Asked) -> Answer:
        self.asked.append(asked)
        return Answer(200, "#!ipxe\n", "pc01", "normal")

    def get(self, method: str, path: str, query: str = "") -> tuple[str, bytes]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REMOTE_ADDR": "10.0.0.7",
        }
        setup_testing_defaults(environ)
        seen: list[str] = []

        def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(status)

        body = b"".join(self.app(environ, start_response))
        return seen[0], body


def test_a_good_request_reaches_the_workflow_with_its_facts() -> None:
    front = Front()
    status, body = front.get("GET", PATH, "uuid=1234-ab&product=Optiplex%207010&platform=pcbios")
    assert status == "200 OK" and body == b"#!ipxe\n"
    (asked,) = front.asked
    assert asked == Asked(
        MAC, "10.0.0.7", {"uuid": "1234-ab", "product": "Optiplex 7010", "platform": "pcbios"}
    )
    assert len(front.logged) == 1 and "10.0.0.7" in front.logged[0] and MAC in front.logged[0]


def test_a_request_from_another_mac_is_marked_unverified() -> None:
    front = Front(sender="52:54:00:99:99:99")
    front.get("GET", PATH)
    assert front.asked[0].verified is False
    front = Front(sender=None)  # not on the LAN (behind a router): no neighbour entry
    front.get("GET", PATH)
    assert front.asked[0].verified is False
    front = Front(sender=None, check_mac=False)  # a routed site that chose not to check
    front.get("GET", PATH)
    assert front.asked[0].verified is True


def test_head_is_refused_like_any_method_but_get() -> None:
    """A HEAD would run the workflow (and reset an ephemeral host) as a GET does."""
    front = Front()
    status, _ = front.get("HEAD", PATH)
    assert status.startswith("405 ") and front.asked == []


@pytest.mark.parametrize(
    ("method", "path", "query", "status"),
    [
        ("POST", PATH, "", 405),
        ("DELETE", PATH, "", 405),
        ("GET", "/../etc/shadow", "", 400),
        ("GET", "/52-54-00-12-34-56.ipxe/..", "", 400),
        ("GET", "//52-54-00-12-34-56.ipxe", "", 400),
        ("GET", "/", "", 404),
        ("GET", "/secrets/pc01.json", "", 404),
        ("GET", "/52-54-00-12-34.ipxe", "", 404),
        ("GET", "/01-00-5e-00-00-01.ipxe", "", 400),  # multicast
        ("GET", "/00-00-00-00-00-00.ipxe", "", 400),
        ("GET", "/" + "a" * MAX_URI + ".ipxe", "", 414),
        ("GET", PATH, "color=red", 400),
        ("GET", PATH, "uuid=1&uuid=2", 400),
        ("GET", PATH, "serial=" + "x" * (MAX_FACT + 1), 400),
        ("GET", PATH, "serial=a%0Ab", 400),
        ("GET", PATH, "serial=%FF", 400),
        ("GET", PATH, "&&", 400),
    ],
)
def test_bad_requests_get_4xx_and_reach_nothing(
    method: str, path: str, query: str, status: int
) -> None:
    front = Front()
    got, body = front.get(method, path, query)
    assert got.startswith(f"{status} ") and body.startswith(b"zboot: ")
    assert front.asked == []
    assert len(front.logged) == 1


def valid_query() -> st.SearchStrategy[str]:
    fact = st.text(st.characters(min_codepoint=0x30, max_codepoint=0x7A), max_size=8)
    return st.dictionaries(st.sampled_from(FACTS), fact, max_size=3).map(
        lambda d: "&".join(f"{k}={v}" for k, v in d.items())
    )


METHODS = st.one_of(
    st.sampled_from(["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT", "get"]),
    st.text(max_size=12),
)
BAD_PATHS = hostile(st.sampled_from([PATH, "/52-54-00-ab-cd-ef.ipxe", "/x/" + PATH[1:]]))
BAD_QUERIES = hostile(valid_query())


def valid(method: str, path: str, query: str) -> bool:
    try:
        parse(method, path, query, "10.0.0.7")
    except HttpError:
        return False
    return True


@HOSTILE
@given(
    which=st.sampled_from(["method", "path", "query"]),
    method=METHODS,
    path=BAD_PATHS,
    query=BAD_QUERIES,
)
def test_hostile_requests_get_only_4xx_and_ask_nothing(
    which: str, method: str, path: str, query: str
) -> None:
    """One part of the request hostile, the others those of a good request."""
    request = {
        "method": method if which == "method" else "GET",
        "path": path if which == "path" else PATH,
        "query": query if which == "query" else "",
    }
    assume(not valid(**request))
    front = Front()
    status, _ = front.get(request["method"], request["path"], request["query"])
    assert 400 <= int(status.split()[0]) < 500, (request, status)
    assert front.asked == []


def test_facts_are_kept_only_when_plain() -> None:
    assert facts("uuid=&product=x") == {"product": "x"}
    assert facts("manufacturer=QEMU&buildarch=x86_64") == {
        "manufacturer": "QEMU",
        "buildarch": "x86_64",
    }


def test_prefix_of_the_boot_url_path() -> None:
    assert [prefix_of(p) for p in ("", "/", "/boot", "/boot/", "a/b")] == [
        "/",
        "/",
        "/boot/",
        "/boot/",
        "/a/b/",
    ]
    assert parse("GET", "/boot" + PATH, "", "x", "/boot/").mac == MAC
    with pytest.raises(HttpError):
        parse("GET", PATH, "", "x", "/boot/")


def test_requests_that_come_together_are_answered_in_one_batch() -> None:
    ran: list[list[int]] = []

    def handle(items: list[int]) -> list[str]:
        ran.append(items)
        time.sleep(0.2)
        return [f"answer {i}" for i in items]

    batcher: Batcher[int, str] = Batcher(handle, lambda item, err: f"failed {item}", gather=0.1)
    answers: dict[int, str] = {}
    threads = [
        threading.Thread(target=lambda i=i: answers.__setitem__(i, batcher.ask(i, 10)))
        for i in range(40)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == {i: f"answer {i}" for i in range(40)}
    assert sum(len(b) for b in ran) == 40 and len(ran) <= 3, [len(b) for b in ran]


def test_a_batch_that_fails_answers_everyone_and_the_next_one_works() -> None:
    calls: list[list[str]] = []

    def handle(items: list[str]) -> list[str]:
        calls.append(items)
        if len(calls) == 1:
            raise OSError("pool unreachable")
        return [f"ok {i}" for i in items]

    batcher: Batcher[str, str] = Batcher(handle, lambda item, err: f"retry {item}: {err}", 0.01)
    assert batcher.ask("a", 5) == "retry a: pool unreachable"
    assert batcher.ask("b", 5) == "ok b"


@pytest.fixture
def served() -> Iterator[tuple[Front, int]]:
    front = Front()
    server = waitress.create_server(
        front.app, host="127.0.0.1", port=0, threads=4, max_request_header_size=8192
    )
    port = server.effective_port
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield front, port
    finally:
        server.close()


def raw(port: int, data: bytes) -> bytes:
    """What the server answers; b"" when it cut the connection (waitress
    answers an oversized request and closes, which may reset the socket
    before the answer is read)."""
    out = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server has closed its side already
            pass
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            return out
    return out


def test_under_waitress_garbage_gets_4xx_and_a_good_request_its_script(
    served: tuple[Front, int],
) -> None:
    front, port = served
    for junk in (
        b"\x00\x01\x02garbage\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nX: " + b"y" * 9000 + b"\r\n\r\n",
        b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST " + PATH.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    ):
        answer = raw(port, junk)
        assert answer == b"" or (answer.startswith(b"HTTP/1.") and answer.split()[1][:1] == b"4"), (
            junk[:40],
            answer,
        )
    assert front.asked == []
    good = raw(port, b"GET " + PATH.encode() + b" HTTP/1.0\r\n\r\n")
    assert good.split()[1] == b"200" and good.endswith(b"#!ipxe\n")
    assert len(front.asked) == 1


def test_storage_unreachable_gets_an_error_script_then_the_next_request_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workflow raising (zfs failing: the pool briefly gone) answers each
    machine of the batch with a script that says so and asks again; the
    service goes on, and the next batch is answered normally."""
    from zboot.config import Config
    from zboot.errors import ServerError
    from zboot.serve import server

    calls: list[int] = []

    def answer_all(reading: object, changing: object, asked: list[Asked]) -> list[Answer]:
        calls.append(len(asked))
        if len(calls) == 1:
            raise ServerError("cannot open 'tank': pool I/O is currently suspended")
        return [Answer(200, "#!ipxe\nsanboot\n", "pc01", "normal") for _ in asked]

    monkeypatch.setattr(server, "answer_all", answer_all)
    service = server.Service(Config(boot_url="http://10.0.0.1/"))
    first = service.ask(Asked(MAC, "10.0.0.7"))
    assert first.status == 200 and first.script.startswith("#!ipxe")
    assert "could not answer: cannot open 'tank'" in first.script
    assert "chain --replace --autofree http://10.0.0.1/${mac:hexhyp}.ipxe" in first.script
    assert service.ask(Asked(MAC, "10.0.0.7")).script == "#!ipxe\nsanboot\n"


def test_facts_as_ipxe_sends_them_for_a_real_machine() -> None:
    """What QEMU's BIOS iPXE sent (the lab's client): a text uuid, '+' kept."""
    query = (
        "uuid=00000000-0000-0000-0000-000000000000&manufacturer=QEMU"
        "&product=Standard%20PC%20(i440FX%20+%20PIIX,%201996)&serial=&platform=pcbios"
        "&buildarch=i386"
    )
    assert facts(query) == {
        "uuid": "00000000-0000-0000-0000-000000000000",
        "manufacturer": "QEMU",
        "product": "Standard PC (i440FX + PIIX, 1996)",
        "platform": "pcbios",
        "buildarch": "i386",
    }


def test_the_report_script_asks_for_the_uuid_as_text() -> None:
    """${uuid:uristring} is the raw 16 bytes (%00...), which iPXE decodes and
    cuts the URL at: the first lab boot sent only "uuid="."""
    from zboot.boot.ipxe import report_script

    script = report_script("http://10.0.0.1/")
    assert "uuid=${uuid}&" in script and "${uuid:uristring}" not in script
    assert "manufacturer=${manufacturer:uristring}" in script


def test_the_service_keeps_no_record_of_the_commands_it_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A service that runs for months must not grow with every boot."""
    from zboot.config import Config
    from zboot.serve import server

    def answer_all(reading: Any, changing: object, asked: list[Asked]) -> list[Answer]:
        reading.runner.commands.append(("zfs", "list"))
        return [Answer(200, "#!ipxe\n") for _ in asked]

    monkeypatch.setattr(server, "answer_all", answer_all)
    service = server.Service(Config(boot_url="http://10.0.0.1/"))
    for _ in range(3):
        service.ask(Asked(MAC, "10.0.0.7"))
    assert service.reading.runner.commands == []
