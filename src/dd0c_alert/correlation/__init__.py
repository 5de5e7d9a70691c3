"""The correlation engine: pure decisions over alert and incident state (design §6)."""
