"""Real Lambda handlers used by the tests and the function host: ``handler(event, context)``.

Helpers shared by them live in :mod:`tests.functions.records`.
"""
