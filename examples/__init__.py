"""Callers' code to read and copy: the demo ``memorybank demo`` runs (``demo``, ``demo_more``),
every action through the SDK."""
