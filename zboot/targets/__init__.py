"""iSCSI target engines: each host's disk as its own target."""
