"""A golden Linux image, built from Debian's own packages: the installed
kernel, open-iscsi's `iscsistart` and `iscsid`, and busybox. Its initramfs
takes the iSCSI disk over through the iBFT that iPXE leaves in memory, as an
operating system does after a SAN boot, and mounts its root from that disk;
the root's /init starts iscsid (which takes the boot session over, so the disk
survives a target restart), prints what it took from the iBFT and a boot
counter kept on the disk, then powers off. The writer image is the same OS
whose /init writes to its disk in a loop instead (linux-root-writer.sh), for
the tests that change the server under a running machine.

One disk boots on both firmwares: GPT with an EFI system partition that holds
SYSLINUX (BIOS, through gptmbr.bin and the partition's legacy-boot flag) and
a standalone GRUB as \\EFI\\BOOT\\BOOTX64.EFI (UEFI), the kernel and the
initramfs; a small ext4 root beside it. The installer (kernel + an initramfs
that carries the disk image) writes the same OS onto a blank disk."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .costs import timed
from .golden import grub_standalone
from .install import guest_kernel
from .layout import LAB_SRC, Layout
from .procs import LabError, output, run

MIB = 1024 * 1024
SECTOR = 512
ESP_START = 2048  # sectors
ESP_MIB = 40
ROOT_MIB = 22  # busybox, iscsid and its libraries (15 MiB), the writer's 2 MiB file
IMAGE_MIB = 64  # iPXE's INT 13h wants more than one 8 MB cylinder
BUSYBOX = Path("/bin/busybox")
ISCSISTART = Path("/usr/sbin/iscsistart")
ISCSID = Path("/usr/sbin/iscsid")
# iscsid's settings for the sessions it takes over (the rest are its defaults):
# a connection that breaks is logged in again for up to replacement_timeout
# seconds, and I/O waits meanwhile; after that the disk fails its I/O. A
# target that stops answering without closing the connection is noticed by
# the NOP-Out pings (every 5 s, 5 s to answer).
ISCSID_CONF = """\
node.session.timeo.replacement_timeout = 120
node.conn[0].timeo.noop_out_interval = 5
node.conn[0].timeo.noop_out_timeout = 5
"""
GPTMBR = Path("/usr/lib/syslinux/mbr/gptmbr.bin")
ISOLINUX = Path("/usr/lib/ISOLINUX/isolinux.bin")
LDLINUX = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
# What the initramfs loads, in this order (each with what it depends on):
# the clients' NICs, the iSCSI initiator, the iBFT reader, disks and ext4.
MODULES = [
    "virtio_pci",
    "virtio_net",
    "e1000",
    "iscsi_tcp",
    "iscsi_ibft",
    "sd_mod",
    "crc32c_generic",
    "ext4",
]
CMDLINE = "console=ttyS0,115200 panic=1 quiet"
SOURCES = ("linux-initramfs.sh", "linux-root-init.sh", "linux-root-writer.sh")


def digest(kernel: str) -> str:
    """Everything that goes into the images: this builder, its scripts, the
    kernel and the versions of the packages whose files are copied in."""
    versions = output(
        ["dpkg-query", "-W", "-f", "${Package}=${Version}\n", "open-iscsi", "busybox-static"]
    )
    versions += output(["ldd", str(ISCSID)])  # its libraries are copied in too
    parts = [Path(__file__).read_bytes(), kernel.encode(), versions.encode()]
    parts += [(LAB_SRC / "golden" / name).read_bytes() for name in SOURCES]
    return hashlib.sha256(b"\0".join(parts)).hexdigest()[:16]


def cache_stem(layout: Layout) -> Path:
    """Where the built files go, named by digest (a suffix each)."""
    return layout.golden / f"linux-{digest(guest_kernel())}"


def cached_paths(layout: Layout) -> dict[str, Path]:
    """The golden OS's built files under the lab's state directory."""
    stem = cache_stem(layout)
    return {
        "disk": stem.with_suffix(".img"),
        "installer": stem.with_suffix(".installer.iso"),
    }


@contextmanager
def building(layout: Layout, what: str) -> Iterator[Path]:
    """A scratch directory beside the cache (a file moved from it into the
    cache appears whole), the build timed as `what`."""
    layout.golden.mkdir(parents=True, exist_ok=True)
    with (
        timed(what),
        tempfile.TemporaryDirectory(prefix=".zboot-linux-", dir=layout.golden) as tmp,
    ):
        yield Path(tmp)


def ensure_built(layout: Layout) -> dict[str, Path]:
    """Build the disk image and the installer CD once per machine (by digest)."""
    paths = cached_paths(layout)
    if all(path.exists() for path in paths.values()):
        return paths
    with building(layout, "linux image build") as work:
        kernel = guest_kernel()
        vmlinuz = Path(f"/boot/vmlinuz-{kernel}")
        disk = os_disk(work, kernel)
        installer_initrd = initramfs(
            work / "installer", kernel, work / "installer.gz", os_image=disk
        )
        installer = work / "installer.iso"
        installer_cd(work / "installer-cd", vmlinuz, installer_initrd, installer)
        installer.replace(paths["installer"])
        disk.replace(paths["disk"])  # last: its presence means all are there
    return paths


def os_disk(work: Path, kernel: str, extra: dict[str, bytes] | None = None) -> Path:
    """The OS's disk image, built in work (extra: more files on its root)."""
    initrd = initramfs(work / "initrd", kernel, work / "initrd.gz")
    disk = work / "disk.img"
    vmlinuz = Path(f"/boot/vmlinuz-{kernel}")
    write_disk(work / "os", vmlinuz, initrd, disk, ROOT_MIB, "zboot-linux", CMDLINE, extra)
    return disk


def write_linux_golden(layout: Layout, out: Path) -> None:
    """Copy the golden Linux disk image to out (building it first if needed)."""
    shutil.copyfile(ensure_built(layout)["disk"], out)


def write_linux_writer_golden(layout: Layout, out: Path) -> None:
    """Copy the writer image to out (building it first if needed): the golden
    OS whose /init writes to its disk in a loop until the server says stop,
    then reports (ZBOOT-WRITER)."""
    path = cache_stem(layout).with_suffix(".writer.img")
    if not path.exists():
        with building(layout, "linux writer image build") as work:
            extra = {"zboot/writer": (LAB_SRC / "golden" / "linux-root-writer.sh").read_bytes()}
            os_disk(work, guest_kernel(), extra).replace(path)
    shutil.copyfile(path, out)


def write_linux_installer(layout: Layout, out: Path) -> None:
    """Copy the installer's CD image to out: it boots (BIOS or UEFI), logs in
    to the disk the iBFT names and writes the golden OS onto it."""
    shutil.copyfile(ensure_built(layout)["installer"], out)


def module_files(kernel: str) -> list[Path]:
    """The modules to load, dependencies first, each once."""
    ordered: list[Path] = []
    for name in MODULES:
        shown = output(["modprobe", "-S", kernel, "--show-depends", name])
        for line in shown.splitlines():
            words = line.split()
            if len(words) >= 2 and words[0] == "insmod":
                path = Path(words[1])
                if path not in ordered:
                    ordered.append(path)
    if not ordered:
        raise LabError(f"no modules found for kernel {kernel}")
    return ordered


def shared_libraries(binary: Path) -> list[Path]:
    """The libraries binary loads (ldd), its loader included."""
    libs: list[Path] = []
    for line in output(["ldd", str(binary)]).splitlines():
        words = line.split()
        path = words[2] if len(words) >= 3 and words[1] == "=>" else words[0]
        if path.startswith("/"):
            libs.append(Path(path))
    return libs


def copy_into(root: Path, source: Path, dest: Path | None = None) -> None:
    target = root / (dest or source).relative_to("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source.resolve(), target)


def initramfs(root: Path, kernel: str, out: Path, *, os_image: Path | None = None) -> Path:
    """A gzip'd newc cpio: busybox, iscsistart and its libraries, the modules
    in load order, and the init script (plus the disk image, for the installer)."""
    for directory in ("bin", "sbin", "proc", "sys", "dev", "etc", "run", "tmp", "modules"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    copy_into(root, BUSYBOX)
    copy_into(root, ISCSISTART)
    for lib in shared_libraries(ISCSISTART):
        copy_into(root, lib)
    order = []
    for module in module_files(kernel):
        shutil.copy2(module, root / "modules" / module.name)
        order.append(module.name)
    (root / "modules" / "order").write_text("\n".join(order) + "\n")
    init = root / "init"
    shutil.copyfile(LAB_SRC / "golden" / "linux-initramfs.sh", init)
    init.chmod(0o755)
    if os_image is not None:
        with (
            os_image.open("rb") as src,
            gzip.open(root / "os.img.gz", "wb", compresslevel=6) as dst,
        ):
            shutil.copyfileobj(src, dst)
    files = subprocess.run(
        ["find", ".", "-mindepth", "1"], cwd=root, capture_output=True, check=True
    ).stdout
    with out.open("wb") as archive:
        cpio = subprocess.Popen(
            ["cpio", "-o", "-H", "newc", "--quiet", "-R", "0:0"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        packed, _ = cpio.communicate(files)
        if cpio.returncode != 0:
            raise LabError("cpio failed to pack the initramfs")
        archive.write(gzip.compress(packed, compresslevel=6))
    return out


def root_filesystem(
    work: Path, out: Path, size_mib: int, extra: dict[str, bytes] | None = None
) -> None:
    """ext4 with busybox, iscsid and its libraries, the reporting /init, a
    counter at 0 and the extra files (path in the root: content)."""
    root = work / "rootfs"
    for directory in ("bin", "sbin", "proc", "sys", "dev", "run", "etc/iscsi", "zboot"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    copy_into(root, ISCSID, Path("/sbin/iscsid"))
    for lib in shared_libraries(ISCSID):
        copy_into(root, lib)
    (root / "etc" / "iscsi" / "iscsid.conf").write_text(ISCSID_CONF)
    # iscsid answers requests (its own session sync among them) only from a
    # user it can look up: without root in /etc/passwd it refuses them all
    # ("peeruser_unix: unknown local user with uid 0") and takes nothing over.
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    for name, content in (extra or {}).items():
        (root / name).write_bytes(content)
    init = root / "init"
    shutil.copyfile(LAB_SRC / "golden" / "linux-root-init.sh", init)
    init.chmod(0o755)
    (root / "zboot" / "counter").write_text("0\n")
    run(
        [
            "mkfs.ext4",
            "-q",
            "-F",
            "-L",
            "zboot-root",
            "-E",
            "root_owner=0:0",
            "-d",
            str(root),
            str(out),
            f"{size_mib}M",
        ]
    )


def grub_efi(work: Path, marker: str, cmdline: str) -> Path:
    cfg = work / "grub.cfg"
    cfg.write_text(
        "insmod part_gpt\n"
        "insmod fat\n"
        "insmod linux\n"
        f"search --no-floppy --file --set=esp /{marker}\n"
        'if [ -z "$esp" ]; then\n'
        f'  echo "ZBOOT-ERROR: GRUB found no disk with /{marker}"\n'
        "  halt\n"
        "fi\n"
        f"linux ($esp)/vmlinuz {cmdline}\n"
        "initrd ($esp)/initrd.gz\n"
        "boot\n"
    )
    efi = work / "BOOTX64.EFI"
    modules = "part_gpt fat iso9660 search search_fs_file linux normal echo test halt"
    grub_standalone(cfg, efi, modules)
    return efi


def system_partition(
    work: Path, vmlinuz: Path, initrd: Path, out: Path, marker: str, cmdline: str
) -> None:
    """FAT: SYSLINUX for BIOS, GRUB for UEFI, both loading the same kernel."""
    run(["mkfs.vfat", "-n", "ZBOOT-ESP", "-C", str(out), str(ESP_MIB * 1024)])
    run(["mmd", "-i", str(out), "::/syslinux", "::/EFI", "::/EFI/BOOT"])
    run(["syslinux", "--install", "--directory", "/syslinux", str(out)])
    cfg = work / "syslinux.cfg"
    cfg.write_text(
        f"DEFAULT linux\nPROMPT 0\nLABEL linux\n  KERNEL /vmlinuz\n"
        f"  APPEND initrd=/initrd.gz {cmdline}\n"
    )
    marker_file = work / marker
    marker_file.write_text(f"zboot lab: {marker}\n")
    copies = {
        cfg: "::/syslinux/syslinux.cfg",
        vmlinuz: "::/vmlinuz",
        initrd: "::/initrd.gz",
        marker_file: f"::/{marker}",
        grub_efi(work, marker, cmdline): "::/EFI/BOOT/BOOTX64.EFI",
    }
    for source, dest in copies.items():
        run(["mcopy", "-i", str(out), str(source), dest])


def write_disk(
    work: Path,
    vmlinuz: Path,
    initrd: Path,
    image: Path,
    root_mib: int,
    marker: str,
    cmdline: str,
    extra: dict[str, bytes] | None = None,
) -> None:
    """A GPT disk: the EFI system partition (both firmwares boot from it),
    and an ext4 root of root_mib (none when 0) with the extra files."""
    work.mkdir(parents=True, exist_ok=True)
    esp = work / "esp.img"
    system_partition(work, vmlinuz, initrd, esp, marker, cmdline)
    partitions = [
        "-n",
        f"1:{ESP_START}:+{ESP_MIB}M",
        "-t",
        "1:ef00",
        "-A",
        "1:set:2",  # legacy BIOS bootable: gptmbr.bin boots this one
        "-c",
        "1:ZBOOT-ESP",
    ]
    root_start = ESP_START + ESP_MIB * MIB // SECTOR
    root = work / "root.img"
    if root_mib:
        root_filesystem(work, root, root_mib, extra)
        partitions += ["-n", f"2:{root_start}:+{root_mib}M", "-t", "2:8300", "-c", "2:zboot-root"]
    with image.open("wb") as disk:
        disk.truncate(IMAGE_MIB * MIB)
    run(["sgdisk", "-o", *partitions, str(image)])
    with image.open("r+b") as disk:
        disk.write(GPTMBR.read_bytes()[:440])  # boot code only: keep the protective MBR
        disk.seek(ESP_START * SECTOR)
        disk.write(esp.read_bytes())
        if root_mib:
            disk.seek(root_start * SECTOR)
            disk.write(root.read_bytes())


def installer_cd(work: Path, vmlinuz: Path, initrd: Path, iso: Path) -> None:
    """An El Torito CD for both firmwares (ISOLINUX; GRUB in an EFI image),
    as a site's installer DVD: install mode falls through to it."""
    cmdline = f"{CMDLINE} zboot.install"
    tree = work / "tree"
    (tree / "isolinux").mkdir(parents=True)
    shutil.copy2(ISOLINUX, tree / "isolinux" / "isolinux.bin")
    shutil.copy2(LDLINUX, tree / "isolinux" / "ldlinux.c32")
    (tree / "isolinux" / "isolinux.cfg").write_text(
        f"DEFAULT install\nPROMPT 0\nLABEL install\n  KERNEL /vmlinuz\n"
        f"  APPEND initrd=/initrd.gz {cmdline}\n"
    )
    shutil.copy2(vmlinuz, tree / "vmlinuz")
    shutil.copy2(initrd, tree / "initrd.gz")
    (tree / "zboot-installer").write_text("zboot lab: installer\n")
    efiboot = tree / "efiboot.img"
    run(["mkfs.vfat", "-C", str(efiboot), "4096"])
    run(["mmd", "-i", str(efiboot), "::/EFI", "::/EFI/BOOT"])
    grub = grub_efi(work, "zboot-installer", cmdline)
    run(["mcopy", "-i", str(efiboot), str(grub), "::/EFI/BOOT/BOOTX64.EFI"])
    run(
        [
            "xorriso",
            "-as",
            "mkisofs",
            "-quiet",
            "-V",
            "ZBOOT-INSTALLER",
            "-o",
            str(iso),
            "-b",
            "isolinux/isolinux.bin",
            "-c",
            "isolinux/boot.cat",
            "-no-emul-boot",
            "-boot-load-size",
            "4",
            "-boot-info-table",
            "-eltorito-alt-boot",
            "-e",
            "efiboot.img",
            "-no-emul-boot",
            str(tree),
        ]
    )
