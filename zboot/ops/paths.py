"""Where a host's things are, derived in this one place from the config: its
disk (dataset and device), its target name, its boot script, its secret file."""

from __future__ import annotations

from ..boot.ipxe import script_name
from ..config import Config, secrets_name
from ..errors import InvalidInput
from ..names import iqn


def host_dataset(config: Config, host: str) -> str:
    return f"{config.hosts}/{host}"


def host_device(config: Config, host: str) -> str:
    """The zvol's device node, as the target engines are given it."""
    return f"/dev/zvol/{host_dataset(config, host)}"


def data_dataset(config: Config, host: str) -> str:
    """The host's data disk: exported as the LUN after its OS disk."""
    return f"{config.data}/{host}"


def data_device(config: Config, host: str) -> str:
    return f"/dev/zvol/{data_dataset(config, host)}"


def target_iqn(config: Config, host: str) -> str:
    if not config.iqn_base:
        raise InvalidInput(
            "the config has no target name base ([target] iqn_base)",
            hint="run zboot init, which picks one and stores it",
        )
    return iqn(f"{config.iqn_base}:{host}")


def host_target(config: Config, host: str, recorded: str) -> str:
    """The host's target name: the one its record keeps, else the derived one."""
    return recorded or target_iqn(config, host)


def script_path(config: Config, mac: str) -> str:
    return f"{config.boot_dir.rstrip('/')}/{script_name(mac)}"


def secrets_dir(config: Config) -> str:
    """The root's own directory of secret files (config.secrets_name: one no
    other root has)."""
    return f"{config.secrets_dir}/{secrets_name(config.root)}"


def legacy_secrets_dir(config: Config) -> str:
    """Where zboot before issue 16 kept the root's secret files: each '/' written
    as '_', a name tank/lab_a and tank/lab/a shared. The same as secrets_dir
    for a root without '_'."""
    return f"{config.secrets_dir}/{config.root.replace('/', '_')}"


def secret_path(config: Config, host: str, home: str | None = None) -> str:
    """The host's secret file, in the root's directory (or home: where
    ops.chap.secrets_home found the root's files)."""
    return f"{home or secrets_dir(config)}/{host}.chap"
