"""The SRE console: ``memorybank console`` serves one page (inline HTML and JS, no CDN, works
offline) that polls JSON built from the stack's own ``/metrics`` and ``/healthz``: each region's
status, replica and index lag, error rate and p95 over the last minutes, the topology, and the
reports of past drills (``DATA_DIR/drills/``)."""
