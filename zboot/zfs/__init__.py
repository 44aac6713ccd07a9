"""ZFS through its command-line tools (any runner, local or SSH)."""
