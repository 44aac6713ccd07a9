"""`zboot serve` on the storage server: the configuration, the contexts the
workflow runs in (reads without the lock; changes under the server's lock,
taken per batch and let go after it), the batcher, and waitress serving the
application."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import waitress

from ..boot.ipxe import waiting_script
from ..config import Config
from ..errors import InvalidInput
from ..ops.boot_service import Answer, Asked, answer_all, base_url
from ..ops.context import Context, open_context
from ..remote import lock
from ..remote.local import LocalRunner
from .app import BootApp
from .batcher import Batcher
from .neighbours import NeighbourTable
from .request import prefix_of

THREADS = 64  # requests waiting at once (a room powered on together)
ANSWER_TIMEOUT = 120.0  # seconds a request waits for its batch
LOG = logging.getLogger("zboot.serve")


def address_and_port(config: Config) -> tuple[str, int]:
    """Where the service listens: [serve] listen and port, by default the
    boot URL's host (an IP address) and port, so `zboot dhcp`'s lines point
    at it unchanged."""
    url = urlsplit(config.boot_url or "")
    listen = config.serve.listen
    if listen is None:
        try:
            listen = str(ip_address(url.hostname or ""))
        except ValueError:
            raise InvalidInput(
                "zboot serve needs an address to listen on",
                hint='set [serve] listen = "<the boot LAN address>" (the boot URL names no IP)',
            ) from None
    if url.scheme == "https" and config.serve.port is None:
        raise InvalidInput(
            "the boot URL is https, and zboot serve speaks plain HTTP",
            hint="set [serve] port and put a TLS proxy in front, or use an http:// boot URL",
        )
    return listen, config.serve.port or url.port or 80


def check(config: Config) -> None:
    if not config.server.is_local:
        raise InvalidInput(
            "zboot serve runs on the storage server itself",
            hint="run it there with --server local (the systemd unit in contrib/boot does)",
        )
    if not config.boot_url:
        raise InvalidInput(
            "the config has no boot URL ([boot] url)",
            hint="the URL clients fetch <mac>.ipxe from, e.g. http://10.0.0.1/",
        )
    if config.scripts != "service":
        LOG.warning(
            'zboot: [boot] scripts is not "service": zboot still writes script files, '
            "and a web server serving them bypasses this service's checks and resets"
        )


class Service:
    """The contexts and the batcher behind the application."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.reading = open_context(config, LocalRunner(sudo=config.server.sudo))
        self.batcher: Batcher[Asked, Answer] = Batcher(self.answer, self.failed)

    @contextmanager
    def changing(self) -> Iterator[Context]:
        """A context whose runner holds the server's lock until the batch is done."""
        server = self.config.server
        runner = lock.LockedRunner(
            LocalRunner(sudo=server.sudo),
            lambda inner: lock.acquire(
                inner, "serve", server.lock_timeout, "this server", LOG.info
            ),
        )
        try:
            yield open_context(self.config, runner)
        finally:
            runner.close()

    def answer(self, asked: list[Asked]) -> list[Answer]:
        try:
            return answer_all(self.reading, self.changing, asked)
        finally:
            # the runner records each command it ran (for -v); a service
            # that runs for months must not keep them all
            self.reading.runner.commands.clear()

    def failed(self, asked: Asked, err: Exception) -> Answer:
        """The storage could not answer: tell the machine and let it ask again."""
        why = f"the storage server could not answer: {getattr(err, 'message', err)}"
        return Answer(200, waiting_script(base_url(self.config), why), outcome=f"error: {err}")

    def ask(self, asked: Asked) -> Answer:
        return self.batcher.ask(asked, ANSWER_TIMEOUT)


def application(config: Config, service: Service) -> BootApp:
    return BootApp(
        service.ask,
        NeighbourTable().mac_of,
        LOG.info,
        prefix_of(urlsplit(config.boot_url or "/").path),
        config.serve.check_mac,
    )


def make_server(config: Config, **overrides: Any) -> Any:
    """waitress's server for the application, bound, not yet serving."""
    check(config)
    host, port = address_and_port(config)
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": THREADS,
        "connection_limit": 4 * THREADS,
        "channel_timeout": 30,
        "max_request_header_size": 8192,
        "max_request_body_size": 1024,
        "ident": "zboot",
        "expose_tracebacks": False,
        "clear_untrusted_proxy_headers": True,
    } | overrides
    return waitress.create_server(application(config, Service(config)), **settings)


def serve(config: Config) -> None:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
    )
    server = make_server(config)
    LOG.info("zboot serve: listening on %s", server.effective_host)
    server.run()
