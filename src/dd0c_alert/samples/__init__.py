"""Realistic sample webhook bodies per provider, copied from tests/fixtures/payloads;
sent by ``POST /v1/integrations/{id}/test``."""
