"""Real servers on loopback that stand in for Slack, an SMTP relay and webhook receivers.

Shared by the tests (``tests/`` is on ``sys.path`` under pytest) and the benchmarks
(``bench/`` puts ``tests/`` on ``sys.path``), so both exercise the real clients.
"""
