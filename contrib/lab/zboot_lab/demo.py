"""`lab demo`: the whole chain on the built-in lab, end to end. A golden image
becomes a zvol, is exported over iSCSI to one initiator, gets a per-MAC iPXE
script, and a diskless client boots it twice (its counter goes 1, 2).

zboot's own commands take over these steps as they land; until then the demo
does them the way an admin would by hand."""

from __future__ import annotations

import json

from . import client, exports, vm, zvols
from .golden import write_golden
from .install import install_all
from .layout import POOL, Layout
from .progress import say, step
from .remote import ssh

DEMO_ZVOL = f"{POOL}/lab-demo"
DEMO_IQN = "iqn.2026-11.lab.zboot:lab-demo"
DEMO_INITIATOR = "iqn.2026-11.lab.zboot:demo-pc"
DEMO_MAC = "52:54:00:de:00:01"


def run_demo(layout: Layout) -> int:
    install_all(layout)
    vm.start(layout)
    image = layout.golden / "bios.img"
    with step("writing the BIOS golden image"):
        write_golden("bios", image)
    with step(f"importing it as zvol {DEMO_ZVOL} (replacing the last demo's)"):
        exports.lio_unexport(layout, DEMO_ZVOL, DEMO_IQN)
        zvols.destroy(layout, DEMO_ZVOL)
        zvols.import_image(layout, image, DEMO_ZVOL)
        ssh(layout, ["zfs", "snapshot", f"{DEMO_ZVOL}@golden"])
    with step(f"exporting it through LIO as {DEMO_IQN}, for {DEMO_INITIATOR} only"):
        exports.lio_export(layout, DEMO_ZVOL, DEMO_IQN, DEMO_INITIATOR)
    with step(f"publishing the iPXE script for {DEMO_MAC}"):
        script = exports.sanboot_script(DEMO_INITIATOR, layout.portal("lio"), 0, DEMO_IQN)
        exports.write_boot_script(layout, DEMO_MAC, script)
    counters = []
    for attempt in (1, 2):
        with step(f"powering on the diskless client {DEMO_MAC} (boot {attempt})"):
            result = client.boot(layout, DEMO_MAC, "bios", timeout=180)
        print(json.dumps(result.to_json(), indent=2))
        counters.append(result.counter)
        if not result.booted:
            say(f"the client did not boot its disk; console log: {result.log}")
            return 1
    say(f"the client booted its own disk twice; its boot counter went {counters[0]} -> "
        f"{counters[1]}. The lab is still up: `contrib/lab/lab down` stops it.")
    return 0 if counters == [1, 2] else 1
