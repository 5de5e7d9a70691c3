"""Ports (Protocols) and their adapters: schema, migrations, SQL store, queue, archive."""
