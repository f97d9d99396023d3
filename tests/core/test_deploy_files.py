"""The deploy files parse, and the launcher's RBAC grants exactly what the backend uses."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_kubernetes_manifests_parse_and_grant_least_privilege():
    docs = [d for d in yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "rota.yaml").read_text()) if d]
    kinds = sorted({d["kind"] for d in docs})
    assert kinds == sorted(
        {
            "Namespace",
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Job",
            "NetworkPolicy",
            "Service",
            "PersistentVolumeClaim",
        }
    )
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(r["resources"][0], verb) for r in role["rules"] for verb in r["verbs"]}
    assert ("pods", "create") in granted and ("pods/log", "get") in granted
    assert not any(verb in {"*", "escalate", "bind"} for _r, verb in granted)
    cluster_role = next(d for d in docs if d["kind"] == "ClusterRole")
    assert cluster_role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_compose_file_parses():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    assert {"postgres", "redis", "migrate", "web", "worker", "qcluster"} <= set(compose["services"])
