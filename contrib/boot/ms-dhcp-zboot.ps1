# zboot: chainload iPXE, then each host's own script (run in an elevated
# PowerShell on the DHCP server; needs the DhcpServer module).
$ErrorActionPreference = 'Stop'
Add-DhcpServerv4Class -Name 'iPXE' -Type User -Data 'iPXE' -ErrorAction SilentlyContinue
Add-DhcpServerv4OptionDefinition -Name 'iSCSI initiator IQN' -OptionId 203 -Type String -ErrorAction SilentlyContinue
Add-DhcpServerv4Policy -Name 'zboot-pxe-bios' -Condition And -UserClass NE,iPXE -VendorClass EQ,'PXEClient:Arch:00000*'
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-bios' -OptionId 66 -Value '10.0.0.1'
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-bios' -OptionId 67 -Value 'undionly.kpxe'
Add-DhcpServerv4Policy -Name 'zboot-pxe-efi64' -Condition And -UserClass NE,iPXE -VendorClass EQ,'PXEClient:Arch:00007*'
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-efi64' -OptionId 66 -Value '10.0.0.1'
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pxe-efi64' -OptionId 67 -Value 'snponly.efi'
Add-DhcpServerv4Policy -Name 'zboot-pc01' -Condition And -MacAddress EQ,525400aa0001 -UserClass EQ,iPXE
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pc01' -OptionId 67 -Value 'http://10.0.0.1/boot/52-54-00-aa-00-01.ipxe'
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pc01' -OptionId 203 -Value 'iqn.2010-04.org.ipxe:pc01'
Add-DhcpServerv4Policy -Name 'zboot-pc02' -Condition And -MacAddress EQ,525400aa0002 -UserClass EQ,iPXE
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pc02' -OptionId 67 -Value 'http://10.0.0.1/boot/52-54-00-aa-00-02.ipxe'
Set-DhcpServerv4OptionValue -PolicyName 'zboot-pc02' -OptionId 203 -Value 'iqn.2010-04.org.ipxe:pc02'
# Give option 3 (router) in the PXE policies only, never to iPXE.
