"""Telling people about incidents: routing, pure renderers (Slack, email, webhooks) and senders."""
