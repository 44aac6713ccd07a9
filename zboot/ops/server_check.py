"""`zboot server check`: what the storage server has and lacks for zboot, and
for each target engine, with the command that installs what is missing on
that system. Read-only: one probe script (POSIX sh, for Linux, FreeBSD and
illumos alike) reports facts as `name<TAB>value` lines, and this module
judges them. Nothing on the server changes.

The server is ready when zboot can work with it: the login works (as root,
or through `sudo -n` when sudo = true), ZFS and the pool are there, the
server's /usr/bin/python3 runs (the server lock and the engine agents are
Python), files can be written (SFTP over the SSH connection, unless sudo or
local), and the configured engine is usable ("auto": the one zboot would
pick). The boot side (boot directory served over HTTP, iPXE first stages,
TFTP) and this machine's qemu-img are reported but decide nothing: they may
live on other machines."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config import Config
from ..remote.base import Runner
from ..remote.python import SERVER_PATH, SERVER_PYTHON
from ..targets.registry import pick
from .server_install import OsRelease, install, parse_os_release

TOOLS = (
    *("zfs", "zpool", "targetcli", "targetctl", "tgtadm", "tgt-admin", "tgtd", "istgt"),
    *("istgtcontrol", "ctld", "ctladm", "itadm", "stmfadm", "svcs", "curl", "wget"),
)
LIO_MODULES = ("target_core_mod", "iscsi_target_mod", "target_core_iblock")
IPXE_DIRS = ("/usr/lib/ipxe", "/usr/local/share/ipxe", "/usr/share/ipxe")
TFTP_DIRS = ("/srv/tftp", "/var/lib/tftpboot", "/tftpboot", "/srv/tftpboot")
FIRST_STAGES = ("undionly.kpxe", "snponly.efi", "ipxe.efi")
# The server's Python, run as zboot's agents run it: its version, and whether
# rtslib-fb is installed, with the version its dist-info or egg-info names
# (found, not imported: importing it, or importlib.metadata, takes seconds).
PYTHON_INFO = (
    "import os, sys; os.chdir('/'); print('python', sys.version.split()[0])\n"
    "import importlib.util as u\n"
    "s = u.find_spec('rtslib_fb')\n"
    "if s and s.origin:\n"
    " d = os.path.dirname(os.path.dirname(s.origin))\n"
    " v = [n.rsplit('.', 1)[0].split('-')[1] for n in os.listdir(d)\n"
    "      if n.lower().startswith('rtslib_fb-') and n.endswith(('.dist-info', '.egg-info'))]\n"
    " print('rtslib', (v + ['?'])[0])"
)
# $1 pool, $2 boot dir, $3 boot URL ("" for none). Few processes: in a slow
# VM each one costs, so the rest is shell builtins.
PROBE = f"""
NL='
'
say() {{ printf '%s\\t%s\\n' "$1" "$2"; }}
say uname "$(uname -sr)"
say id "$(id)"
[ -r /etc/os-release ] && while IFS= read -r l; do say os "$l"; done < /etc/os-release
for t in {" ".join(TOOLS)}; do command -v "$t"; done 2>/dev/null |
  while IFS= read -r p; do say tool "$p"; done
[ -x {SERVER_PYTHON} ] && env -i {SERVER_PATH} {SERVER_PYTHON} -I -c "{PYTHON_INFO}" 2>/dev/null |
  while read -r k v; do say "$k" "$v"; done
for m in {" ".join(LIO_MODULES)} zfs; do
  if [ -d "/sys/module/$m" ]; then say kmod "$m loaded"
  elif command -v modinfo >/dev/null && modinfo "$m" >/dev/null 2>&1; then say kmod "$m available"
  fi
done
zfs version 2>/dev/null | while IFS= read -r l; do say zfs-version "$l"; done
[ -r /sys/module/zfs/version ] && read -r v < /sys/module/zfs/version &&
  say zfs-version "zfs-kmod-$v"
p=$(zpool list -H -o name,health "$1" 2>/dev/null) && say pool "$p"
procs=$(ps -A -o comm= 2>/dev/null)
for d in tgtd istgt ctld; do
  case "$NL$procs$NL" in *"$NL$d$NL"* | *"/$d$NL"*) say running "$d" ;; esac
done
command -v svcs >/dev/null && for s in stmf network/iscsi/target; do
  say smf "$s $(svcs -H -o state "$s" 2>/dev/null)"; done
f=
if [ -d "$2" ]; then
  n=0
  for x in "$2"/* "$2"/.[!.]*; do
    [ -e "$x" ] || continue
    n=$((n + 1))
    [ -z "$f" ] && [ -f "$x" ] && f=${{x##*/}}
  done
  say bootdir "$n"
fi
for d in {" ".join(IPXE_DIRS + TFTP_DIRS)}; do for f1 in {" ".join(FIRST_STAGES)}; do
  [ -f "$d/$f1" ] && say file "$d/$f1"; done; done
if command -v ss >/dev/null; then
  [ -n "$(ss -Hlun 'sport = :69' 2>/dev/null)" ] && say listen "udp 69"
else
  netstat -an 2>/dev/null | grep -Ei "^udp.*[.:]69 " >/dev/null && say listen "udp 69"
fi
if [ -n "$3" ] && [ -d "$2" ]; then
  u="${{3%/}}/$f"
  if command -v curl >/dev/null; then
    say http "$f $(curl -s -o /dev/null -I -m 5 -w '%{{http_code}}' "$u" 2>/dev/null)"
  elif command -v wget >/dev/null; then
    wget -q --spider -T 5 "$u" 2>/dev/null && say http "$f 200" || say http "$f 000"
  fi
fi
exit 0
"""
ID_RE = re.compile(r"uid=(?P<uid>[0-9]+)(?:\((?P<user>[^)]*)\))?")


@dataclass(frozen=True)
class Facts:
    """What the probe reported (empty when the probe could not run)."""

    ran: bool
    error: str = ""  # why it could not run (sudo, login)
    os: OsRelease = field(default_factory=OsRelease)
    uid: int | None = None
    user: str = ""
    tools: dict[str, str] = field(default_factory=dict)  # name -> path
    python: str | None = None
    rtslib: str | None = None
    kmods: dict[str, str] = field(default_factory=dict)  # loaded | available
    zfs: dict[str, str] = field(default_factory=dict)  # userland, kmod
    pool: str | None = None  # its health
    running: set[str] = field(default_factory=set)
    smf: dict[str, str] = field(default_factory=dict)
    boot_files: int | None = None  # in the boot dir; None: no boot dir
    files: list[str] = field(default_factory=list)
    listening: set[str] = field(default_factory=set)  # "udp 69": a TFTP server
    http: tuple[str, str] | None = None  # (file fetched, HTTP status)


def probe(runner: Runner, config: Config) -> Facts:
    argv = ["sh", "-c", PROBE, "sh", config.pool, config.boot_dir, config.boot_url or ""]
    result = runner.run(argv, check=False, read_only=True, timeout=60)
    if not result.ok:
        error = result.stderr.decode("utf-8", "replace").strip() or f"exit {result.returncode}"
        return Facts(ran=False, error=error)
    return parse(result.text)


def parse(text: str) -> Facts:
    lines: dict[str, list[str]] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            lines.setdefault(name, []).append(value)

    def one(name: str) -> str | None:
        return lines.get(name, [None])[0]

    zfs: dict[str, str] = {}
    for line in lines.get("zfs-version", []):
        if line.startswith("zfs-kmod-"):
            zfs["kmod"] = line.removeprefix("zfs-kmod-")
        elif line.startswith("zfs-"):
            zfs["userland"] = line.removeprefix("zfs-")
    pool = one("pool")
    listed = lines.get("bootdir")
    who = ID_RE.search(one("id") or "")
    http = one("http")
    return Facts(
        ran=True,
        os=parse_os_release("\n".join(lines.get("os", [])), one("uname") or ""),
        uid=int(who["uid"]) if who else None,
        user=(who["user"] or "") if who else "",
        tools={p.rsplit("/", 1)[-1]: p for p in lines.get("tool", []) if p.startswith("/")},
        python=one("python"),
        rtslib=one("rtslib"),
        kmods=dict(k.split(" ", 1) for k in lines.get("kmod", []) if " " in k),
        zfs=zfs,
        pool=pool.split("\t")[-1] if pool else None,
        running=set(lines.get("running", [])),
        smf={s.split(" ")[0]: s.partition(" ")[2] for s in lines.get("smf", [])},
        boot_files=int(listed[0]) if listed and listed[0].isdigit() else None,
        files=lines.get("file", []),
        listening=set(lines.get("listen", [])),
        http=tuple(http.rsplit(" ", 1)) if http and " " in http else None,  # type: ignore[arg-type]
    )


@dataclass(frozen=True)
class Item:
    area: str  # zfs, access, python, an engine's name, boot, this machine
    name: str
    ok: bool
    detail: str
    needed: bool  # the verdict depends on it
    install: str | None = None  # how to get it, when it is missing

    def to_json(self) -> dict[str, object]:
        return {
            "area": self.area,
            "item": self.name,
            "ok": self.ok,
            "needed": self.needed,
            "detail": self.detail,
            "install": self.install,
        }


@dataclass(frozen=True)
class Report:
    server: str
    os: OsRelease
    configured: str  # the config's engine
    engine: str  # the one zboot would use ("auto" resolved)
    engines: dict[str, bool]  # usable, by name
    items: list[Item]

    @property
    def ready(self) -> bool:
        return all(i.ok for i in self.items if i.needed)

    @property
    def missing(self) -> list[Item]:
        return [i for i in self.items if i.needed and not i.ok]


SftpCheck = Callable[[], str | None]  # None: an SFTP session opens; else why not


def check(runner: Runner, config: Config, where: str, sftp: SftpCheck | None) -> Report:
    facts = probe(runner, config)
    return assess(facts, config, where, sftp() if sftp is not None else None, sftp is not None)


def assess(facts: Facts, config: Config, where: str, sftp: str | None, remote: bool) -> Report:
    """Judge the facts (pure: every rule is here, unit-tested)."""
    family = facts.os.family
    items = access(facts, config, family, sftp, remote)
    engines = engine_items(facts, family) if facts.ran else {}
    usable = {n: bool(rows) and all(i.ok for i in rows if i.needed) for n, rows in engines.items()}
    usable = {name: usable.get(name, False) for name in ENGINE_NAMES} | {"none": True}
    tools = list(facts.tools)
    chosen = config.engine if config.engine != "auto" else pick(tools, facts.rtslib is not None)
    if facts.ran:
        items += base(facts, config, family)
        for name, rows in engines.items():  # only the engine in use decides the verdict
            items += [i if name == chosen else replace(i, needed=False) for i in rows]
    here = ", ".join(n for n in ENGINE_NAMES if usable[n]) or "none"
    if config.engine == "auto" and chosen == "none":
        reason = "no target engine found (auto)"
        items.append(Item("engine", "auto", False, reason, True, None))
    elif chosen != "none":
        state = "usable" if usable[chosen] else f"not usable (usable here: {here})"
        items.append(Item("engine", chosen, usable[chosen], state, True, None))
    if facts.ran:
        items += boot_items(facts, config, family)
    items += local_items()
    return Report(where, facts.os, config.engine, chosen, usable, items)


def access(
    facts: Facts, config: Config, family: str | None, sftp: str | None, remote: bool
) -> list[Item]:
    if not facts.ran:
        how = "sudo" if config.server.sudo else "login"
        fix = install("sudo", family) if config.server.sudo else None
        return [Item("access", how, False, f"the probe did not run: {facts.error}", True, fix)]
    rows = []
    if config.server.sudo:
        rows.append(Item("access", "sudo", True, "sudo -n works (no password)", True))
    root = facts.uid == 0
    detail = "root" if root else f"user {facts.user} (uid {facts.uid}) without sudo"
    rows.append(Item("access", "root", root, detail, True, None if root else install("root", None)))
    if remote and not config.server.sudo:
        ok = sftp is None
        rows.append(
            Item(
                "access",
                "sftp",
                ok,
                "SFTP session opens" if ok else f"no SFTP: {sftp}",
                True,
                None if ok else install("sftp", family),
            )
        )
    return rows


def _row(area: str, name: str, found: str | None, needed: bool, family: str | None) -> Item:
    ok = found is not None
    fix = None if ok else install(name, family, area)
    return Item(area, name, ok, found if ok and found else "missing", needed, fix)


def base(facts: Facts, config: Config, family: str | None) -> list[Item]:
    zfs_kmod = facts.zfs.get("kmod") or ("loaded" if facts.kmods.get("zfs") == "loaded" else None)
    if family in ("freebsd", "illumos") and zfs_kmod is None and facts.pool is not None:
        zfs_kmod = "in the kernel"
    userland = facts.zfs.get("userland") or facts.tools.get("zfs")
    return [
        _row("zfs", "zfs", userland, True, family),
        _row("zfs", "zfs-kmod", zfs_kmod, False, family),
        Item(
            "zfs",
            f"pool {config.pool}",
            facts.pool is not None,
            facts.pool or "not found",
            True,
            None if facts.pool else "create it (zpool create) or give init --pool NAME",
        ),
        _row("python", "python3", facts.python and f"{SERVER_PYTHON} {facts.python}", True, family),
    ]


ENGINE_NAMES = ("lio", "tgt", "istgt", "ctld", "comstar")


def engine_items(facts: Facts, family: str | None) -> dict[str, list[Item]]:
    def tool(area: str, name: str, needed: bool = True) -> Item:
        return _row(area, name, facts.tools.get(name), needed, family)

    def kmod(name: str) -> Item:
        state = facts.kmods.get(name)
        return _row("lio", name, state and f"kernel module {state}", True, family)

    def daemon(area: str, name: str) -> Item:
        up = name in facts.running
        return _row(area, name, "running" if up else None, True, family)

    def smf(name: str) -> Item:
        state = facts.smf.get(name, "")
        return _row("comstar", name, state if state == "online" else None, True, family)

    rtslib = facts.rtslib and f"rtslib-fb {facts.rtslib} in {SERVER_PYTHON}"
    return {
        "lio": [
            _row("lio", "rtslib-fb", rtslib, True, family),
            *(kmod(m) for m in LIO_MODULES),
            tool("lio", "targetcli", needed=False),
            tool("lio", "targetctl", needed=False),
        ],
        "tgt": [tool("tgt", "tgtadm"), daemon("tgt", "tgtd"), tool("tgt", "tgt-admin", False)],
        "istgt": [tool("istgt", "istgt"), tool("istgt", "istgtcontrol")],
        "ctld": [tool("ctld", "ctld"), tool("ctld", "ctladm")],
        "comstar": [
            tool("comstar", "itadm"),
            tool("comstar", "stmfadm"),
            smf("stmf"),
            smf("network/iscsi/target"),
        ],
    }


def boot_items(facts: Facts, config: Config, family: str | None) -> list[Item]:
    """The boot side: reported, never needed (it may be another machine's)."""
    rows = [
        Item(
            "boot",
            f"dir {config.boot_dir}",
            facts.boot_files is not None,
            f"{facts.boot_files} files" if facts.boot_files is not None else "missing",
            False,
            None if facts.boot_files is not None else f"mkdir -p {config.boot_dir}",
        )
    ]
    if config.scripts == "files":
        rows.append(http_item(facts, config, family))
    stages = {f.rsplit("/", 1)[1]: f for f in facts.files}
    for name in ("undionly.kpxe", "snponly.efi"):
        rows.append(
            _row("boot", name, stages.get(name), False, family)
            if name in stages
            else Item("boot", name, False, "not found", False, install("ipxe", family))
        )
    tftp = "udp 69" in facts.listening
    rows.append(
        Item(
            "boot",
            "tftp",
            tftp,
            "listening on udp 69" if tftp else "nothing on udp 69",
            False,
            None if tftp else install("tftp", family),
        )
    )
    return rows


def http_item(facts: Facts, config: Config, family: str | None) -> Item:
    url = config.boot_url
    if url is None:
        return Item("boot", "http", False, "no boot URL set", False, "init --boot-url URL")
    if facts.http is None:
        detail = "cannot tell: no curl or wget on the server"
        return Item("boot", "http", False, detail, False, None)
    name, status = facts.http
    if name and status == "200":
        return Item("boot", "http", True, f"{url} serves {name} from the boot dir", False)
    heard = status not in ("", "000")
    if heard and not name:
        detail = f"{url} answers (HTTP {status}); the boot dir has no file to tell it serves it"
        return Item("boot", "http", True, detail, False)
    detail = f"{url}{name} gave HTTP {status}" if heard else f"{url}: no answer from the server"
    return Item("boot", "http", False, detail, False, install("http", family))


def local_items() -> list[Item]:
    """This machine (where zboot runs): qemu-img converts images to import."""
    found = shutil.which("qemu-img")
    family = parse_os_release(_read("/etc/os-release")).family
    detail = found or "missing (needed only to import qcow2, vmdk, vhdx and other images)"
    fix = None if found else install("qemu-img", family)
    return [Item("this machine", "qemu-img", found is not None, detail, False, fix)]


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
