"""The floor's plans (contrib/lab/zboot_lab/floor.py): the zfs commands zboot
runs for each operation, on the floor's own datasets, IQNs and files; and
the in-VM script it ships (run here against a stand-in rtslib)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from zboot_lab.floor import BOOTSTRAP, SCRIPT, Floor, Step

from zboot.zfs import lzc_remote, program

PAIRS = [("fz3x001", "52:54:00:aa:00:01"), ("fz3x002", "52:54:00:aa:00:02")]
NAMES = [h for h, _ in PAIRS]


def argvs(phase_steps: list[Step]) -> list[list[str]]:
    out: list[list[str]] = []
    for step in phase_steps:
        out += step.get("argvs", [step.get("argv")])
    return [a for a in out if a]


def test_a_batch_runs_the_zfs_commands_zboot_runs_in_its_order() -> None:
    """As `zboot -v` lists them (4bff25d): a batch's property sets are one
    channel program each step, a lone host's a `zfs set`."""
    floor = Floor(root="tank/fl", tag="t")
    clone = floor.clone("provision 2", PAIRS)
    assert clone.zfs_commands() == [
        *("zfs list", "zfs get", "zfs clone", "zfs clone", "zfs program", "zfs program"),
    ]
    programs = [s for s in clone.steps if s.get("stdin") == program.SET_PROPS]
    assert "org.zboot:step=clone:exported" in programs[0]["argv"]
    assert all(p["program"] for p in programs)  # its answer is checked, dataset by dataset
    rollback = floor.rollback("rollback 2", NAMES)
    assert rollback.zfs_commands() == [
        *("zfs list", "zfs get", "zfs program", "zfs rename", "zfs rename"),
        *("zfs clone", "zfs clone", "zfs program", "zfs program"),
    ]
    floor.new_version()
    rebase = floor.rollback("rebase 2", NAMES, rebase=True)
    destroy = floor.destroy("destroy 2", NAMES)
    assert destroy.zfs_commands() == ["zfs list", "zfs get", "zfs program", "zfs program"]
    one = Floor(root="tank/fl", tag="t")
    one.clone("clone", PAIRS[:1])
    assert one.rollback("rollback", NAMES[:1]).zfs_commands() == [
        *("zfs list", "zfs get", "zfs set", "zfs rename", "zfs clone", "zfs set", "zfs set"),
    ]
    # the LIO work: one walk, the changes, one save (a rollback: delete, then create)
    kinds = [s["do"] for s in rollback.steps if str(s["do"]).startswith("lio")]
    assert kinds == ["lio-walk", "lio-delete", "lio-create", "lio-save"]
    # everything it names is its own
    for phase in (clone, rollback, rebase, destroy):
        for argv in argvs(phase.steps):
            names = [a for a in argv if a.startswith("tank")]
            assert all(a in ("tank", "tank/fl") or a.startswith("tank/fl/") for a in names)
    made = next(s for s in clone.steps if s["do"] == "lio-create")["exports"]
    assert [e["target"] for e in made] == [
        "iqn.2026-11.lab.zboot-floor.t:fz3x001",
        "iqn.2026-11.lab.zboot-floor.t:fz3x002",
    ]
    assert all(str(e["storage"]).startswith("zfloor-t-") for e in made)


def test_rebase_clones_the_new_version_and_destroy_takes_every_archive() -> None:
    floor = Floor(root="tank/fl", tag="t")
    floor.clone("provision", PAIRS)
    floor.rollback("rollback", NAMES)
    floor.new_version()
    rebase = floor.rollback("rebase", NAMES, rebase=True)
    clones = [a for a in argvs(rebase.steps) if a[:2] == ["zfs", "clone"]]
    assert all(a[-2] == "tank/fl/images/gold@v2" for a in clones)
    assert any(a.startswith("org.zboot:rebased-from=gold@v1") for a in clones[0])
    destroy = floor.destroy("destroy", NAMES[:1])
    program = next(s for s in destroy.steps if s.get("stdin"))
    archived = [a for a in program["argv"] if "/archive/fz3x001-" in a]
    assert len(archived) == 2 and program["argv"][-1] == "tank/fl/hosts/fz3x001"
    assert floor.archives == {"fz3x002": floor.archives["fz3x002"]}  # the other one's stay


def test_the_in_vm_script_parses_on_its_own_and_imports_nothing_outside_the_stdlib() -> None:
    tree = ast.parse(SCRIPT.read_text())
    imported = {
        ((n.module or "") if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert imported - set(sys.stdlib_module_names) == {"rtslib_fb"}


def test_the_in_vm_script_runs_phases_and_times_each(tmp_path: Path) -> None:
    """Shipped as zboot ships its agents (source, NUL, request on stdin),
    against a stand-in rtslib: the file steps really happen, each timed phase
    reports its seconds by kind of step."""
    fake = tmp_path / "rtslib_fb"
    fake.mkdir()
    names = "LUN BlockStorageObject FabricModule MappedLUN NetworkPortal NodeACL RTSRoot Target TPG"
    fake.joinpath("__init__.py").write_text(
        "".join(f"class {n}:\n    pass\n" for n in names.split()) + "from . import tcm\n"
    )
    fake.joinpath("tcm.py").write_text("bs_cache = {}\n")
    fake.joinpath("utils.py").write_text("class RTSLibNotInCFS(Exception):\n    pass\n")
    boot = tmp_path / "boot"
    request = {
        "save_file": str(tmp_path / "save.json"),
        "store_prefix": "zfloor-t-",
        "portal": ["127.0.0.1", 3260],
        # zboot's ZFS agent stands in as a run() that touches each target
        "lzc_agent": "import pathlib\n"
        "def run(chains, concurrent):\n"
        "    for chain in chains:\n"
        "        pathlib.Path(chain[0]['names'][1]).touch()\n"
        "    return [None] * len(chains)\n",
        "phases": [
            {"label": "set-up", "timed": False, "steps": [{"do": "mkdir", "path": str(boot)}]},
            {
                "label": "mode",
                "timed": True,
                "steps": [
                    {"do": "run", "argv": ["true"]},
                    {
                        "do": "lzc",
                        "chains": [[{"verb": "clone", "names": ["s@v1", str(boot / "z")]}]],
                        "concurrent": 2,
                    },
                    {"do": "write", "path": str(boot / "a.ipxe"), "text": "#!ipxe\n"},
                    {"do": "remove", "paths": [str(boot / "gone.ipxe")]},
                ],
            },
        ],
    }
    stdin = SCRIPT.read_bytes() + b"\0" + json.dumps(request).encode()
    done = subprocess.run(
        [sys.executable, "-c", BOOTSTRAP],
        input=stdin,
        capture_output=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    ((label, seconds, parts),) = json.loads(done.stdout)["seconds"]
    assert label == "mode" and seconds >= sum(parts.values())
    assert set(parts) == {"run", "lzc clone", "write", "remove"}
    assert (boot / "a.ipxe").read_text() == "#!ipxe\n"
    assert oct((boot / "a.ipxe").stat().st_mode & 0o777) == "0o644"
    # no temporary file left; the commands run side by side both ran
    assert sorted(p.name for p in boot.iterdir()) == ["a.ipxe", "z"]


def test_a_big_batch_is_one_libzfs_core_step_as_zboot_makes_it() -> None:
    """From lzc_remote.AT_LEAST hosts on zboot sends its clones and renames
    to its ZFS agent: the floor makes them with the agent's own code."""
    floor = Floor(root="tank/fl", tag="t")
    pairs = [(f"fz{n}", f"52:54:00:00:01:{n:02x}") for n in range(lzc_remote.AT_LEAST)]
    clone = floor.clone("provision 8", pairs)
    [step] = [s for s in clone.steps if s["do"] == "lzc"]
    assert [c[0]["verb"] for c in step["chains"]] == ["clone"] * lzc_remote.AT_LEAST
    assert clone.zfs_commands() == ["zfs list", "zfs get", "zfs program", "zfs program"]
    rollback = floor.rollback("rollback 8", [h for h, _ in pairs])
    verbs = [s["chains"][0][0]["verb"] for s in rollback.steps if s["do"] == "lzc"]
    assert verbs == ["rename", "clone"]
    assert floor.request([clone])["lzc_agent"] == lzc_remote.AGENT
