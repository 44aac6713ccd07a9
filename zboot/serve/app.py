"""The boot service's WSGI application: check the request (request.py), see
who sent it (the neighbour table), hand it to the batcher, answer with the
script or a 4xx, and log one line. Nothing here parses HTTP: waitress does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from http import HTTPStatus
from wsgiref.types import StartResponse, WSGIEnvironment

from ..ops.boot_service import Answer, Asked
from .request import HttpError, parse

HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]


class BootApp:
    """One request in, one answer and one log line out."""

    def __init__(
        self,
        ask: Callable[[Asked], Answer],
        mac_of: Callable[[str], str | None],
        log: Callable[[str], None],
        prefix: str = "/",
        check_mac: bool = True,
    ) -> None:
        self.ask = ask
        self.mac_of = mac_of
        self.log = log
        self.prefix = prefix
        self.check_mac = check_mac

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        started = time.monotonic()
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        query = str(environ.get("QUERY_STRING", ""))
        address = str(environ.get("REMOTE_ADDR", ""))
        mac = ""
        try:
            request = parse(method, path, query, address, self.prefix)
            mac = request.mac
            sender = self.mac_of(address) if self.check_mac else None
            verified = not self.check_mac or sender == request.mac
            answer = self.ask(Asked(request.mac, address, request.facts, verified))
        except HttpError as err:
            answer = Answer(err.status, outcome=err.reason)
        body = answer.script.encode() if answer.status == 200 else _refusal(answer).encode()
        status = HTTPStatus(answer.status)
        start_response(
            f"{status.value} {status.phrase}", [*HEADERS, ("Content-Length", str(len(body)))]
        )
        seconds = time.monotonic() - started
        self.log(
            f"{address or '-'} {method[:8] or '-'} {path[:80]!r} (query {len(query)} B) "
            f"{answer.status} mac={mac or '-'} host={answer.host or '-'} {answer.outcome} "
            f"({seconds:.2f} s)"
        )
        return [body]


def _refusal(answer: Answer) -> str:
    return f"zboot: {answer.outcome or HTTPStatus(answer.status).phrase}\n"
