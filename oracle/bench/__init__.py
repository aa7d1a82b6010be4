"""Reproducible measurements behind ``mira bench``; each prints one JSON object."""
