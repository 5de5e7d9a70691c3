"""The roles a process can run (design §1): a leaf, so the CLI names them without
importing what runs them."""

ROLES = frozenset({"ingest", "correlate", "notify", "api", "cron"})
