"""deploy/kubernetes, checked offline: every manifest validates against the Kubernetes
OpenAPI schemas shipped in the ``kubernetes-validate`` package (strict: unknown fields
are errors) for a pinned Kubernetes version, and the topology holds together: a
Deployment per role running a real CLI command, probes on the port it serves, secrets
from the Secret, the owner's URL only in the migration Job, one cron."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import kubernetes_validate.utils
import pytest
import typer
import yaml

from dd0c_alert.cli import app
from dd0c_alert.config import Settings

ROOT = Path(__file__).resolve().parent.parent
KUBE = ROOT / "deploy" / "kubernetes"
#: The Kubernetes version the manifests are validated for (oldest supported we claim).
KUBERNETES_VERSION = "1.30.0"
ROLES = {"ingest", "correlate", "notify", "api", "cron"}
SECRET = "dd0c-alert-secrets"
SECRET_ENV = {"DATABASE_URL", "REDIS_URL", "DD0C_SECRET_KEY", "DD0C_JWT_SECRET"}
#: Environment not read by Settings: the AWS chain.
NOT_SETTINGS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    return document


@pytest.fixture(scope="module")
def resources(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        found.extend(_documents(KUBE / name))
    return found


def _of_kind(resources: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    [container] = workload["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def _setting_env_names() -> set[str]:
    names: set[str] = set()
    for field_name, field in Settings.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"DD0C_{field_name}".upper())
        else:
            names.update(str(choice).upper() for choice in getattr(alias, "choices", [alias]))
    return names


def test_the_schemas_are_shipped_for_the_pinned_version() -> None:
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


@pytest.mark.parametrize(
    "path", sorted(KUBE.glob("*.yaml")), ids=lambda p: p.name if isinstance(p, Path) else p
)
def test_every_manifest_validates_offline(path: Path) -> None:
    if path.name == "kustomization.yaml":
        document = yaml.safe_load(path.read_text())
        assert document["kind"] == "Kustomization"
        for name in document["resources"]:
            assert (KUBE / name).is_file(), name
        return
    for document in _documents(path):
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name} {document['kind']}: {error.message} at {error.path}")


def test_the_validation_catches_mistakes(resources: list[dict[str, Any]]) -> None:
    ingest = _of_kind(resources, "Deployment")["ingest"]
    broken = yaml.safe_load(yaml.safe_dump(ingest))
    _container(broken)["readinesProbe"] = _container(broken).pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_a_deployment_per_role_running_its_command(resources: list[dict[str, Any]]) -> None:
    deployments = _of_kind(resources, "Deployment")
    assert set(deployments) == ROLES
    commands = set(typer.main.get_command(app).commands)
    for name, deployment in deployments.items():
        args = _container(deployment)["args"]
        assert args[0] == name and name in commands
        assert args[args.index("--host") + 1] == "0.0.0.0", f"{name}: kubelet probes the pod IP"
    assert deployments["ingest"]["spec"]["replicas"] >= 2
    assert deployments["cron"]["spec"]["replicas"] == 1
    assert deployments["cron"]["spec"]["strategy"]["type"] == "Recreate"


def test_probes_and_resources(resources: list[dict[str, Any]]) -> None:
    for name, deployment in _of_kind(resources, "Deployment").items():
        container = _container(deployment)
        port = int(container["args"][container["args"].index("--port") + 1])
        assert container["ports"] == [{"name": "http", "containerPort": port}], name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        requests = container["resources"]["requests"]
        assert requests["cpu"] and requests["memory"], name
        assert container["securityContext"]["runAsNonRoot"] is True


def test_services_select_ingest_and_api(resources: list[dict[str, Any]]) -> None:
    deployments = _of_kind(resources, "Deployment")
    services = _of_kind(resources, "Service")
    assert set(services) == {"ingest", "api"}
    for name, service in services.items():
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_correlate_autoscales(resources: list[dict[str, Any]]) -> None:
    hpa = _of_kind(resources, "HorizontalPodAutoscaler")["correlate"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "correlate"
    assert hpa["spec"]["minReplicas"] >= 2


def test_secrets_come_from_the_secret(resources: list[dict[str, Any]]) -> None:
    settings = _setting_env_names()
    for name, deployment in _of_kind(resources, "Deployment").items():
        env = {e["name"]: e for e in _container(deployment)["env"]}
        for key in SECRET_ENV:
            assert env[key]["valueFrom"]["secretKeyRef"]["name"] == SECRET, (name, key)
        assert "DD0C_MIGRATION_DATABASE_URL" not in env, f"{name} would migrate on start"
        assert not any("value" in e for e in env.values()), f"{name}: a literal value"
        assert set(env) - NOT_SETTINGS <= settings, name
    config = _of_kind(resources, "ConfigMap")["dd0c-alert-config"]
    assert set(config["data"]) <= settings
    [job] = _of_kind(resources, "Job").values()
    job_env = {e["name"]: e for e in _container(job)["env"]}
    assert _container(job)["args"] == ["migrate"]
    assert job_env["DD0C_MIGRATION_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == SECRET
    example = _documents(KUBE / "secret.example.yaml")[0]
    referenced = {
        e["valueFrom"]["secretKeyRef"]["key"]
        for workload in [*_of_kind(resources, "Deployment").values(), job]
        for e in _container(workload)["env"]
    }
    assert referenced <= set(example["stringData"])
    assert (
        "secret.example.yaml"
        not in yaml.safe_load((KUBE / "kustomization.yaml").read_text())["resources"]
    )


def test_images_are_pinned_by_the_kustomization(
    kustomization: dict[str, Any], resources: list[dict[str, Any]]
) -> None:
    [image] = kustomization["images"]
    assert image["newTag"] and image["newTag"] != "latest"
    workloads = [*_of_kind(resources, "Deployment").values(), *_of_kind(resources, "Job").values()]
    assert {_container(w)["image"] for w in workloads} == {image["name"]}
