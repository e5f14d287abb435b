"""Helpers that routes, services, runtime and jobs all need, kept below all of them.

Nothing here imports app.api, app.services, app.runtime or app.jobs (tests/test_architecture.py checks it),
so every layer can use these without an arrow running upward.
"""
