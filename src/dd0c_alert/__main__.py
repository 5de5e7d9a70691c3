"""``python -m dd0c_alert``: the CLI, as ``serve`` starts its background process."""

from dd0c_alert.cli import main

main()
