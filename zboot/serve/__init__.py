"""`zboot serve`: the boot service on the storage server. It answers each
machine's request for its iPXE script from the ZFS records (request.py checks
the request, neighbours.py who sent it, batcher.py gathers requests that come
at once into one run of zboot.ops.boot_service, app.py is the WSGI
application, server.py runs it under waitress)."""
