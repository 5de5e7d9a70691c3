"""Browser tests: one ``dd0c-alert serve`` and one Chromium shared by every module."""
