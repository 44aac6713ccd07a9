#!/usr/bin/python3
"""Serve zboot's boot directory over HTTP: each file by its name, never a
listing of the directory (Python's own `python3 -m http.server` lists every
script, so one request shows a client every other machine's script).
Standard library only; zboot-boot-http.service runs it.

usage: zboot-boot-http.py ADDRESS PORT DIRECTORY"""

from __future__ import annotations

import functools
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class NoListing(SimpleHTTPRequestHandler):
    """Files only: a directory's URL gets 404, as a missing file does."""

    def list_directory(self, path: object) -> None:
        self.send_error(404, "File not found")  # word for word a missing file's answer


def server(address: str, port: int, directory: str) -> ThreadingHTTPServer:
    return ThreadingHTTPServer((address, port), functools.partial(NoListing, directory=directory))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    server(sys.argv[1], int(sys.argv[2]), sys.argv[3]).serve_forever()
