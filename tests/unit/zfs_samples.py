"""Recorded zfs(8) output shared by the unit tests."""

# `zfs list -Hp -r -t all -s createtxg -o name,type,used,referenced,volsize,origin,creation,
# compressratio tank/zboot` and `zfs get -Hp -r -s local -t all -o name,property,value all
# tank/zboot`: names and sizes from a lab run, in the exact format OpenZFS 2.3.2 prints
# there (tab-separated, "-" for none, numbers unscaled).
LIST = """\
tank/zboot\tfilesystem\t245760\t98304\t-\t-\t1795239100\t1.00
tank/zboot/images\tfilesystem\t180224\t98304\t-\t-\t1795239101\t1.00
tank/zboot/images/golden\tvolume\t69632\t69632\t4194304\t-\t1795239140\t1.33
tank/zboot/images/golden@v1\tsnapshot\t0\t69632\t4194304\t-\t1795239180\t1.33
tank/zboot/archive\tfilesystem\t98304\t98304\t-\t-\t1795239103\t1.00
tank/zboot/hosts\tfilesystem\t16384\t98304\t-\t-\t1795239102\t1.00
tank/zboot/hosts/pc01\tvolume\t8192\t69632\t4194304\ttank/zboot/images/golden@v1\t1795239246\t1.33
"""
GET = """\
tank/zboot\tmountpoint\tnone
tank/zboot/images/golden\torg.zboot:kind\timage
tank/zboot/images/golden\torg.zboot:created\t2026-11-21T05:43:10Z
tank/zboot/images/golden\tvolblocksize\t16384
tank/zboot/images/golden@v1\torg.zboot:message\tfirst version
tank/zboot/hosts/pc01\torg.zboot:kind\thost
tank/zboot/hosts/pc01\torg.zboot:mac\t52:54:00:aa:00:01
tank/zboot/hosts/pc01\torg.zboot:image\tgolden
tank/zboot/hosts/pc01\torg.zboot:version\tv1
tank/zboot/hosts/pc01\torg.zboot:origin\ttank/zboot/images/golden@v1
tank/zboot/hosts/pc01\torg.zboot:state\tready
"""
