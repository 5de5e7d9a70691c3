"""FastAPI application: webhooks, REST API, health. Thin: parse, authorise, call, render."""
