"""Small golden disk images for tests: each boots, increments a counter stored
on its own disk, and reports the new value through QEMU's exit status."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .layout import LAB_SRC
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
    if firmware not in FIRMWARES:
        raise LabError(f"unknown firmware {firmware!r}: use one of {', '.join(FIRMWARES)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zboot-golden-") as tmp:
        work = Path(tmp)
        image = work / "disk.img"
        if firmware == "bios":
            bios_image(work, image)
        else:
            uefi_image(work, image)
        image.replace(out) if image.stat().st_dev == out.parent.stat().st_dev \
            else out.write_bytes(image.read_bytes())


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


def uefi_image(work: Path, image: Path) -> None:
    """A GPT disk whose EFI system partition holds a standalone GRUB as
    \\EFI\\BOOT\\BOOTX64.EFI and its counter file."""
    cfg = work / "grub.cfg"
    template = (LAB_SRC / "golden" / "uefi-grub.cfg").read_text()
    cfg.write_text(template.replace("@INCREMENT@", increment_chain()))
    efi = work / "BOOTX64.EFI"
    modules = "normal part_gpt fat search search_fs_file loadenv iorw echo sleep halt test"
    run(["grub-mkstandalone", "-O", "x86_64-efi", "-o", str(efi),
         f"--install-modules={modules}", "--locales=", "--fonts=", "--themes=",
         f"boot/grub/grub.cfg={cfg}"])
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
    run(["sgdisk", "-o", "-n", f"1:{ESP_FIRST_SECTOR}:+{ESP_SIZE_MIB}M", "-t", "1:ef00",
         "-c", "1:ZBOOT-ESP", str(image)])
    with image.open("r+b") as disk:
        disk.seek(ESP_FIRST_SECTOR * SECTOR)
        disk.write(esp.read_bytes())
