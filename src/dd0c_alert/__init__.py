"""dd0c/alert: alert intelligence that never eats an alert."""

__version__ = "0.1.0"
