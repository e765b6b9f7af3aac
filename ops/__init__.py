"""What operators run against a stack: fault drills (``ops.drills``: ``memorybank drill``, the
fault-injecting proxy) and the SRE console (``ops.console``). Beside them, not Python: the
Grafana dashboard (``grafana/``) and the Prometheus rules and alerts (``prometheus/``)."""
