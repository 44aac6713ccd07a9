"""The DHCP side of a diskless boot, for ISC dhcpd, dnsmasq, Kea and Microsoft
DHCP (as PowerShell DhcpServer cmdlets): chainload iPXE by client
architecture (BIOS `undionly.kpxe`, UEFI x64 `snponly.efi`), recognise iPXE
by its user class so it does not loop, hand iPXE the per-MAC script URL
(`${mac:hexhyp}`, expanded by iPXE itself), never hand iPXE a router (Windows
would pin a route to the target through it, KB960104), and give each host its
initiator name in option 203."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from ..names import mac_hexhyp

FORMATS = ("isc", "dnsmasq", "kea", "ms-dhcp")
BIOS_LOADER = "undionly.kpxe"
UEFI_LOADER = "snponly.efi"
SCRIPT = "${mac:hexhyp}.ipxe"  # iPXE expands this to the host's own file name


@dataclass(frozen=True)
class DhcpHost:
    name: str
    mac: str  # 52:54:00:ab:cd:01
    initiator: str


@dataclass(frozen=True)
class Site:
    """Where the first stage and the scripts come from, and the router the
    PXE ROM (not iPXE) may be given."""

    boot_url: str  # http://10.0.0.1/boot (the directory of per-MAC scripts)
    tftp_server: str  # serves undionly.kpxe and snponly.efi
    router: str | None = None

    @property
    def script_url(self) -> str:
        return f"{self.boot_url.rstrip('/')}/{SCRIPT}"


def _quoted(value: str) -> str:
    if any(c in value for c in '"\\\n'):
        raise InvalidInput(f"{value!r} cannot go into a DHCP server's config")
    return f'"{value}"'


def isc(site: Site, hosts: list[DhcpHost]) -> str:
    router = f"        option routers {site.router};\n" if site.router else ""
    lines = [
        "# zboot: chainload iPXE, then each host's own script (include in dhcpd.conf;",
        "# keep `option routers` out of the subnet: iPXE must not get one).",
        "option client-arch code 93 = unsigned integer 16;",
        "option iscsi-initiator-iqn code 203 = string;",
        'if exists user-class and option user-class = "iPXE" {',
        f"    filename {_quoted(site.script_url)};",
        "} else {",
        f"    next-server {site.tftp_server};",
        "    if option client-arch = 00:07 or option client-arch = 00:09 {",
        f"        filename {_quoted(UEFI_LOADER)};",
        "    } else {",
        f"        filename {_quoted(BIOS_LOADER)};",
        "    }",
        router.rstrip("\n"),
        "}",
    ]
    for h in hosts:
        lines += [
            f"host zboot-{h.name} {{",
            f"    hardware ethernet {h.mac};",
            f"    option iscsi-initiator-iqn {_quoted(h.initiator)};",
            "}",
        ]
    return "\n".join(line for line in lines if line) + "\n"


def dnsmasq(site: Site, hosts: list[DhcpHost]) -> str:
    lines = [
        "# zboot: chainload iPXE, then each host's own script (dnsmasq conf-file)",
        "dhcp-userclass=set:ipxe,iPXE",
        "dhcp-match=set:efi64,option:client-arch,7",
        "dhcp-match=set:efi64,option:client-arch,9",
        f"dhcp-boot=tag:!ipxe,tag:!efi64,{BIOS_LOADER},,{site.tftp_server}",
        f"dhcp-boot=tag:!ipxe,tag:efi64,{UEFI_LOADER},,{site.tftp_server}",
        f"dhcp-boot=tag:ipxe,{site.script_url}",
        "dhcp-option=tag:ipxe,option:router",  # an empty router list for iPXE
    ]
    if site.router:
        lines.append(f"dhcp-option=tag:!ipxe,option:router,{site.router}")
    for h in hosts:
        lines += [
            f"dhcp-host={h.mac},set:zboot-{h.name}",
            f"dhcp-option=tag:zboot-{h.name},203,{_quoted(h.initiator)}",
        ]
    return "\n".join(lines) + "\n"


def kea(site: Site, hosts: list[DhcpHost]) -> str:
    """A Dhcp4 fragment: option 203's definition, the client classes and one
    global reservation per host; merge it into kea-dhcp4.conf."""
    pxe_options = [{"name": "routers", "data": site.router}] if site.router else []
    classes: list[dict[str, Any]] = [
        {
            "name": "ipxe",
            "test": "substring(option[77].hex,0,4) == 'iPXE'",
            "boot-file-name": site.script_url,
        },
        {
            "name": "pxe-efi64",
            "test": "not member('ipxe') and (option[93].hex == 0x0007 or option[93].hex == 0x0009)",
            "next-server": site.tftp_server,
            "boot-file-name": UEFI_LOADER,
            "option-data": pxe_options,
        },
        {
            "name": "pxe-bios",
            "test": "not member('ipxe') and not member('pxe-efi64') and option[93].hex == 0x0000",
            "next-server": site.tftp_server,
            "boot-file-name": BIOS_LOADER,
            "option-data": pxe_options,
        },
    ]
    for c in classes:
        if not c.get("option-data"):
            c.pop("option-data", None)
    config = {
        "Dhcp4": {
            "option-def": [
                {"name": "iscsi-initiator-iqn", "code": 203, "type": "string", "space": "dhcp4"}
            ],
            "client-classes": classes,
            "reservations-global": True,
            "reservations": [
                {
                    "hw-address": h.mac,
                    "hostname": h.name,
                    "option-data": [{"name": "iscsi-initiator-iqn", "data": h.initiator}],
                }
                for h in hosts
            ],
        }
    }
    return json.dumps(config, indent=2) + "\n"


def _ps(value: str) -> str:
    """A PowerShell single-quoted string."""
    return "'" + value.replace("'", "''") + "'"


def ms_dhcp(site: Site, hosts: list[DhcpHost]) -> str:
    """PowerShell for the Windows DHCP Server role: a user class for iPXE,
    server-wide policies for the chainload, and one MAC policy per host (no
    reserved IP needed) carrying its script and initiator name."""
    lines = [
        "# zboot: chainload iPXE, then each host's own script (run in an elevated",
        "# PowerShell on the DHCP server; needs the DhcpServer module).",
        "$ErrorActionPreference = 'Stop'",
        "Add-DhcpServerv4Class -Name 'iPXE' -Type User -Data 'iPXE' -ErrorAction SilentlyContinue",
        "Add-DhcpServerv4OptionDefinition -Name 'iSCSI initiator IQN' -OptionId 203 "
        "-Type String -ErrorAction SilentlyContinue",
        "Add-DhcpServerv4Policy -Name 'zboot-pxe-bios' -Condition And "
        "-UserClass NE,iPXE -VendorClass EQ,'PXEClient:Arch:00000*'",
        f"Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-bios' -OptionId 66 "
        f"-Value {_ps(site.tftp_server)}",
        f"Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-bios' -OptionId 67 "
        f"-Value {_ps(BIOS_LOADER)}",
        "Add-DhcpServerv4Policy -Name 'zboot-pxe-efi64' -Condition And "
        "-UserClass NE,iPXE -VendorClass EQ,'PXEClient:Arch:00007*'",
        f"Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-efi64' -OptionId 66 "
        f"-Value {_ps(site.tftp_server)}",
        f"Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-efi64' -OptionId 67 "
        f"-Value {_ps(UEFI_LOADER)}",
    ]
    for h in hosts:
        policy = _ps(f"zboot-{h.name}")
        url = f"{site.boot_url.rstrip('/')}/{mac_hexhyp(h.mac)}.ipxe"
        lines += [
            f"Add-DhcpServerv4Policy -Name {policy} -Condition And "
            f"-MacAddress EQ,{mac_hexhyp(h.mac).replace('-', '')} -UserClass EQ,iPXE",
            f"Set-DhcpServerv4OptionValue -PolicyName {policy} -OptionId 67 -Value {_ps(url)}",
            f"Set-DhcpServerv4OptionValue -PolicyName {policy} -OptionId 203 "
            f"-Value {_ps(h.initiator)}",
        ]
    if site.router:
        lines.append("# Give option 3 (router) in the PXE policies only, never to iPXE.")
    return "\n".join(lines) + "\n"


RENDERERS = {"isc": isc, "dnsmasq": dnsmasq, "kea": kea, "ms-dhcp": ms_dhcp}


def render(fmt: str, site: Site, hosts: list[DhcpHost]) -> str:
    if fmt not in RENDERERS:
        raise InvalidInput(f"unknown DHCP format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    return RENDERERS[fmt](site, hosts)
