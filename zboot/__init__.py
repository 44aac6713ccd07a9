"""zboot: golden disk images and per-machine clones on ZFS, exported over iSCSI,
booted by iPXE."""

__version__ = "0.1.0"
