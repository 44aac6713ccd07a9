"""known_hosts files as OpenSSH writes them, markers and all."""

from __future__ import annotations

from pathlib import Path

import pytest

from zboot.errors import HostKeyError
from zboot.remote.ssh_hostkeys import KnownHosts


def key_line(tmp_path: Path, name: str) -> tuple[str, str]:
    import subprocess

    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    kind, blob = path.with_name(name + ".pub").read_text().split()[:2]
    return kind, blob


def test_markers_comments_and_hashed_names(tmp_path: Path) -> None:
    kind, blob = key_line(tmp_path, "a")
    other_kind, other_blob = key_line(tmp_path, "b")
    path = tmp_path / "known_hosts"
    path.write_text(
        "# a comment\n\n"
        f"@cert-authority *.example.org {kind} {blob}\n"
        f"storage,10.0.0.1 {kind} {blob}\n"
        f"|1|c2FsdHNhbHRzYWx0c2FsdHNhbHQ=|aGFzaGhhc2hoYXNoaGFzaGhhc2g= {kind} {blob}\n"
        f"@revoked * {other_kind} {other_blob}\n"
        f"oldbox ssh-unknown-type AAAA\n"
    )
    known = KnownHosts([], [])
    known.read(str(path))
    assert [e.hostnames for e in known.entries][:1] == [["storage", "10.0.0.1"]]
    assert len(known.entries) == 2
    assert len(known.revoked) == 1 and known.revoked[0].get_base64() == other_blob
    assert known.is_revoked(known.revoked[0]) and not known.is_revoked(known.entries[0].key)


@pytest.mark.parametrize(
    "line", ["@trusted host ssh-ed25519 AAAA", "host ssh-ed25519 not*base64*at*all!"]
)
def test_an_unreadable_line_is_a_clear_error(tmp_path: Path, line: str) -> None:
    path = tmp_path / "known_hosts"
    path.write_text(f"# first\n{line}\n")
    with pytest.raises(HostKeyError, match=r"known_hosts, line 2"):
        KnownHosts([], []).read(str(path))
