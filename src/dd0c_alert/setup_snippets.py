"""Ready-to-paste configuration for each tool, printed by ``integration create`` and the
API, and shown in docs/providers.md (a test keeps the page in step with this module)."""

from __future__ import annotations

import json


def snippet(provider: str, url: str, secret: str) -> str:
    if provider == "alertmanager":
        return f"""# alertmanager.yml: every alert goes to dd0c. With routes of your own, add
# `- receiver: dd0c` with `continue: true` as the first of them instead of the
# top-level receiver, and keep your receivers beside this one.
route:
  receiver: dd0c
  group_by: ['alertname', 'service']
  group_wait: 30s        # dd0c folds repeats and cascades itself: keep Alertmanager's
  group_interval: 5m     # grouping short so alerts arrive while they happen
  repeat_interval: 4h
receivers:
  - name: dd0c
    webhook_configs:
      - url: {url}
        send_resolved: true   # dd0c resolves incidents from these
        max_alerts: 0         # 0: all alerts of a group in one delivery
        http_config:
          authorization:
            type: Bearer
            credentials: {secret}
"""
    if provider == "grafana":
        return f"""Grafana → Alerting → Contact points → New → Webhook
  URL: {url}
  Optional → HMAC signature secret: {secret}      (or Authorization header: Bearer {secret})
"""
    if provider == "datadog":
        return f"""Datadog → Integrations → Webhooks → New
  URL: {url}
  Custom headers: {{"X-DD0C-Token": "{secret}"}}
  Payload: keep the default, or add "tags": "$TAGS", "alert_priority": "$ALERT_PRIORITY"
  Then mention @webhook-<name> in your monitors.
"""
    if provider == "pagerduty":
        return f"""PagerDuty → Integrations → Generic Webhooks (v3) → New webhook
  URL: {url}
  Then set this integration's secret to PagerDuty's signing secret:
  dd0c-alert integration create --tenant <id> --provider pagerduty --secret <signing secret>
"""
    if provider == "pagerduty-events":
        return f"""Any tool that pages PagerDuty (Events API v2) can send here instead:
  Events URL: {url}
  routing_key: {secret}
"""
    if provider == "opsgenie":
        return f"""Opsgenie → Settings → Integrations → Webhook
  Webhook URL: {url}
  Add custom header: X-DD0C-Token = {secret}
"""
    if provider == "github":
        return f"""GitHub → Repository → Settings → Webhooks → Add webhook
  Payload URL: {url}      Content type: application/json
  Secret: {secret}
  Events: Deployments, Deployment statuses, Workflow runs
"""
    if provider == "gitlab":
        return f"""GitLab → Project → Settings → Webhooks → Add new webhook
  URL: {url}
  Secret token: {secret}
  Trigger: Deployment events, Pipeline events
"""
    if provider == "argocd":
        return f"""# argocd-notifications-cm
service.webhook.dd0c: |
  url: {url}
  headers:
    - name: Authorization
      value: Bearer {secret}
# then the webhook template of docs/providers.md (Argo CD) and the apps' annotations
"""
    example = json.dumps(
        {
            "title": "Checkout latency high",
            "status": "firing",
            "severity": "high",
            "service": "checkout",
        }
    )
    return f"""# X-DD0C-Timestamp is Unix time in seconds (milliseconds are accepted too; an ISO
# date is refused as invalid_timestamp), within 300 s of the server's clock.
# X-DD0C-Signature is v1= + hex HMAC-SHA256 of timestamp + "." + body.
body='{example}'
ts=$(date +%s)
sig=$(printf '%s.%s' "$ts" "$body" | openssl dgst -sha256 -hmac '{secret}' -hex | sed 's/^.* //')
curl -sS -X POST '{url}' -H 'Content-Type: application/json' \\
  -H "X-DD0C-Timestamp: $ts" -H "X-DD0C-Signature: v1=$sig" --data "$body"
"""
