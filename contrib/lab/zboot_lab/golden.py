"""Small golden disk images for tests: each boots, increments a counter stored
on its own disk, and reports the new value through QEMU's exit status."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from .costs import timed
from .layout import LAB_SRC, Layout
from .procs import LabError, run

SECTOR = 512
MIB = 1024 * 1024
COUNTER_MAGIC = b"ZBOOTCNT"
FAILED = 127  # the value both programs report when they cannot count
# iPXE derives a CHS geometry for INT 13h (255 heads x 63 sectors): a disk
# smaller than one such cylinder (about 8 MB) fails to boot with an I/O error.
BIOS_IMAGE_SIZE = 64 * MIB
UEFI_IMAGE_SIZE = 64 * MIB
ESP_FIRST_SECTOR = 2048
ESP_SIZE_MIB = 40
FIRMWARES = ("bios", "uefi")


def write_golden(firmware: str, out: Path) -> None:
    """Write the firmware's golden image to out. Built once per machine and
    kept under the lab's state directory, named by a digest of everything
    that goes into it (sources, this builder), so a change rebuilds it."""
    if firmware not in FIRMWARES:
        raise LabError(f"unknown firmware {firmware!r}: use one of {', '.join(FIRMWARES)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    cached = Layout.from_env().golden / f"{firmware}-{build_digest(firmware)}.img"
    if not cached.exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        build(firmware, cached)
    shutil.copyfile(cached, out)


def build_digest(firmware: str) -> str:
    sources = [Path(__file__), *sorted((LAB_SRC / "golden").iterdir())]
    digest = hashlib.sha256(firmware.encode())
    for path in sources:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def build(firmware: str, out: Path) -> None:
    """Build the image in a scratch directory beside out, then move it in place."""
    with (
        timed("golden image build"),
        tempfile.TemporaryDirectory(prefix=".zboot-golden-", dir=out.parent) as tmp,
    ):
        image = Path(tmp) / "disk.img"
        if firmware == "bios":
            bios_image(Path(tmp), image)
        else:
            uefi_image(Path(tmp), image)
        image.replace(out)


def bios_image(work: Path, image: Path) -> None:
    """Sector 0: the counting boot sector. Sector 1: magic + counter (0)."""
    boot = work / "boot.bin"
    run(["nasm", "-f", "bin", str(LAB_SRC / "golden" / "bios-counter.asm"), "-o", str(boot)])
    sector0 = boot.read_bytes()
    if len(sector0) != SECTOR or sector0[-2:] != b"\x55\xaa":
        raise LabError("the assembled boot sector is not a 512-byte MBR")
    counter = (COUNTER_MAGIC + b"\x00").ljust(SECTOR, b"\x00")
    with image.open("wb") as disk:
        disk.write(sector0 + counter)
        disk.truncate(BIOS_IMAGE_SIZE)


def increment_chain(limit: int = FAILED - 1) -> str:
    """GRUB script that sets count to count + 1 (0 when unset), up to limit."""
    lines = ['if [ -z "$count" ]; then set count=1']
    lines += [f'elif [ "$count" = "{n}" ]; then set count={n + 1}' for n in range(limit)]
    lines.append(f"else set count={FAILED}")
    lines.append("fi")
    return "\n".join(lines)


def grub_standalone(cfg: Path, efi: Path, modules: str) -> None:
    """A standalone GRUB for x86_64 UEFI at efi, with cfg as its grub.cfg and
    only the modules named (space-separated)."""
    run(
        [
            "grub-mkstandalone",
            "-O",
            "x86_64-efi",
            "-o",
            str(efi),
            f"--install-modules={modules}",
            "--locales=",
            "--fonts=",
            "--themes=",
            f"boot/grub/grub.cfg={cfg}",
        ]
    )


def uefi_image(work: Path, image: Path) -> None:
    """A GPT disk whose EFI system partition holds a standalone GRUB as
    \\EFI\\BOOT\\BOOTX64.EFI and its counter file."""
    cfg = work / "grub.cfg"
    template = (LAB_SRC / "golden" / "uefi-grub.cfg").read_text()
    cfg.write_text(template.replace("@INCREMENT@", increment_chain()))
    efi = work / "BOOTX64.EFI"
    modules = "normal part_gpt fat search search_fs_file loadenv iorw echo sleep halt test"
    grub_standalone(cfg, efi, modules)
    env = work / "counter.env"
    run(["grub-editenv", str(env), "create"])
    run(["grub-editenv", str(env), "set", "count=0"])
    esp = work / "esp.img"
    run(["mkfs.vfat", "-n", "ZBOOT-ESP", "-C", str(esp), str(ESP_SIZE_MIB * 1024)])
    run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT", "::/zboot"])
    run(["mcopy", "-i", str(esp), str(efi), "::/EFI/BOOT/BOOTX64.EFI"])
    run(["mcopy", "-i", str(esp), str(env), "::/zboot/counter.env"])
    with image.open("wb") as disk:
        disk.truncate(UEFI_IMAGE_SIZE)
    run(
        [
            "sgdisk",
            "-o",
            "-n",
            f"1:{ESP_FIRST_SECTOR}:+{ESP_SIZE_MIB}M",
            "-t",
            "1:ef00",
            "-c",
            "1:ZBOOT-ESP",
            str(image),
        ]
    )
    with image.open("r+b") as disk:
        disk.seek(ESP_FIRST_SECTOR * SECTOR)
        disk.write(esp.read_bytes())
