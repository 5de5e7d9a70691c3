"""Pure types and rules of dd0c/alert: no I/O, no framework imports."""
