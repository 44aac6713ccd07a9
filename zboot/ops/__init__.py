"""The workflows: images, hosts, rollback. No I/O beyond the ZFS backend and runner."""
