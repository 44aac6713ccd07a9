"""The zboot storage lab: a real ZFS + iSCSI server and real iPXE clients in QEMU."""
