"""A deterministic alert storm as Alertmanager webhooks: several tenants, services with
declared dependencies, problems that cascade from a service to its dependent, and
every notification delivered twice (Alertmanager's repeat), shuffled.

Problems of one tenant lie far apart in event time (more than three windows), so the
expected incidents do not depend on processing order: whichever worker takes which
batch, one problem is one incident.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 20, tzinfo=UTC)
PROBLEM_GAP = timedelta(minutes=40)


@dataclass
class Storm:
    tenants: list[str]
    #: tenant name -> {service: [services it depends on]}
    dependencies: dict[str, dict[str, list[str]]]
    #: (tenant name, Alertmanager body), in delivery order
    deliveries: list[tuple[str, bytes]] = field(default_factory=list)
    #: (tenant name, fingerprint) -> deliveries of it
    sends: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: tenant name -> the expected incidents, each a set of fingerprints
    incidents: dict[str, set[frozenset[str]]] = field(default_factory=dict)

    @property
    def alerts(self) -> int:
        """Alert notifications in the storm (each delivery's alerts counted)."""
        return sum(self.sends.values())


def _body(service_alerts: list[tuple[str, str, datetime]]) -> bytes:
    return json.dumps(
        {
            "version": "4",
            "groupKey": '{}:{alertname="Storm"}',
            "status": "firing",
            "receiver": "dd0c",
            "groupLabels": {"alertname": "Storm"},
            "commonLabels": {"alertname": "Storm"},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "truncatedAlerts": 0,
            "alerts": [
                {
                    "status": "firing",
                    "labels": {
                        "alertname": f"Storm{fp.rsplit('-', 1)[1]}",
                        "severity": "warning",
                        "service": service,
                        "instance": fp,
                    },
                    "annotations": {"summary": f"{service} trouble {fp}"},
                    "startsAt": at.isoformat().replace("+00:00", "Z"),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph",
                    "fingerprint": fp,
                }
                for service, fp, at in service_alerts
            ],
        }
    ).encode()


def make_storm(
    tenants: int = 4, problems: int = 50, alerts_per_problem: int = 50, seed: int = 7
) -> Storm:
    """``tenants * problems * alerts_per_problem * 2`` alert notifications."""
    rnd = random.Random(seed)
    names = [f"storm-{n}" for n in range(tenants)]
    storm = Storm(names, {})
    for tenant in names:
        services = [f"svc-{n:02d}" for n in range(10)]
        # svc-(2k+1) depends on svc-2k: a problem starts at the root and cascades.
        storm.dependencies[tenant] = {
            services[n + 1]: [services[n]] for n in range(0, len(services), 2)
        }
        expected: set[frozenset[str]] = set()
        for p in range(problems):
            root = services[2 * rnd.randrange(len(services) // 2)]
            dependent = services[services.index(root) + 1]
            start = T0 + p * PROBLEM_GAP
            alerts = []
            for a in range(alerts_per_problem):
                service = root if a < alerts_per_problem // 2 else dependent
                fp = f"{tenant}-p{p:03d}-{a:03d}"
                alerts.append((service, fp, start + timedelta(seconds=2 * a)))
            expected.add(frozenset(fp for _, fp, _ in alerts))
            for _ in range(2):  # the first notification and its repeat
                storm.deliveries.append((tenant, _body(alerts)))
                for _, fp, _ in alerts:
                    storm.sends[(tenant, fp)] += 1
        storm.incidents[tenant] = expected
    rnd.shuffle(storm.deliveries)
    return storm
