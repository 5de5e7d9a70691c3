"""Ingestion and processing: the glue between the ports and the pure core."""
