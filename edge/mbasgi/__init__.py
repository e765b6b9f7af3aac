"""The local edge PoP: the same core as the Worker (``mbedge``) over raw ASGI, with in-process
ports (``app``), its fetch port over httpx (``fetch``) and its WebSocket relay (``websocket``).
Runs in ``memorybank up`` and the tests; never uploaded to Cloudflare."""
