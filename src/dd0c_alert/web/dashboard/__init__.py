"""The dashboard: server-rendered pages for people, on the same store as the REST API."""
