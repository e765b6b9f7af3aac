"""``memorybank drill``: steady load through every edge, one injected fault, measured RTO and
RPO, a report (``report.py`` says where it is saved). Pieces: ``load`` (open-loop schedule),
``ops`` (the request mix), ``faults`` (the scenarios), ``stats`` (RTO, steady state,
percentiles), ``verify`` (acknowledged writes on the primary), ``runner`` and ``soak``."""
