"""Kubernetes objects of one development-container run, built from a ``ContainerSpec``: pure.

A run (container id, run number → ``run_key``) is:

* a **Service** ``rota-c-<key>`` (ClusterIP) over the run's HTTP ports: the owner of everything
  else of the run (garbage collection), the target of an Ingress, and where the stop reason is
  written (annotation), as for jobs;
* a **Secret** ``rota-c-<key>-env`` holding JupyterLab's token for the run (never in the pod spec);
* a **Pod** ``rota-c-<key>``: one container per service (``jupyter``, ``startup``, ``ssh``,
  custom ones), sharing the pod's network and the user's volumes. JupyterLab's container holds
  the whole GPUs, CPU and memory the container asked for, and the admins' extended resources
  (RDMA devices); the others request nothing of their own (they share the pod's limits only on
  the nodes' cgroup level). The pod spec around the containers is the job pods' own
  (``podspec.build_pod_spec``): the owner's POSIX identity and ``USER``/``HOME``, the hardened
  security context, pinned to the node the scheduler placed it on, and the pod settings admins
  set for the container's node group and environment (tolerations, runtime and priority class,
  annotations, extended resources, ``hostNetwork``, memlock) — ``ContainerSpec.pod``.
* a **NodePort Service** ``rota-c-<key>-tcp`` for TCP services (SSH, custom TCP) on the NodePorts
  allocated to the container from the owner's port quota (``ContainerSpec.node_ports``).

Restarting one service: each container runs its service under ``SERVICE_WRAPPER``, which watches a
downward-API file holding the pod annotation ``rota.dev/restart-<service>``; the backend bumps the
annotation, the kubelet updates the file, the wrapper kills the service's process group and starts
it again in the same container (same log). Labels carry ``rota.dev/container-run``, never the job
backend's ``rota.dev/attempt``, so the job reconcile never sees a container's objects.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from apps.launcher.backends.container_base import ContainerSpec, ServiceSpec
from apps.launcher.backends.kubernetes.manifests import cpu_quantity, sanitize_label_value
from apps.launcher.backends.kubernetes.podspec import (
    JsonDict,
    build_pod_spec,
    container_security_context,
    extended_resources,
    identity_env,
    pod_annotations,
    validate_pod,
    volumes_and_mounts,
)

RESTART_VOLUME = "rota-restart"
RESTART_DIR = "/etc/rota/restart"
JUPYTER_TOKEN_KEY = "JUPYTER_TOKEN"  # noqa: S105 - a key name, not a secret

#: PID 1 of every service container (bash): runs the service as its own process group, forwards
#: TERM/INT/HUP to it (as TERM), and restarts it when the file ``$ROTA_RESTART_FILE`` (a
#: downward-API view of the pod annotation ``rota.dev/restart-<service>``) changes. After a
#: forwarded stop signal, and after a restart's TERM, it waits until the service's whole process
#: group is gone, not only its leader, for at most ``$ROTA_STOP_GRACE_SECONDS`` (the pod's
#: ``terminationGracePeriodSeconds``): a ``bash -c`` service dies of the TERM at once while its
#: Python may still be saving state, and PID 1 exiting kills every process left in the container.
#: What is left at the end of the grace is SIGKILLed (a restart then starts the service again).
#: A service that ends on its own is not waited for beyond its leader: the wrapper exits with its
#: status at once, so a forgotten background process cannot hold the container.
SERVICE_WRAPPER = (
    'f="$ROTA_RESTART_FILE"; grace="${ROTA_STOP_GRACE_SECONDS:-10}"; seen=$(cat "$f" 2>/dev/null); '
    "stopping=0; child=; end=0; "
    # The grace of a stop counts from the first signal; a later one forwards TERM again.
    "trap '[ $stopping = 1 ] || end=$((SECONDS+grace)); stopping=1; kill -TERM -- -$child 2>/dev/null' "
    "TERM INT HUP; "
    "while :; do "
    'set -m; "$@" & child=$!; set +m; restarted=0; '
    # A stop that came while the service was (re)starting.
    '[ "$stopping" = 1 ] && kill -TERM -- -$child 2>/dev/null; '
    'while kill -0 "$child" 2>/dev/null; do '
    'now=$(cat "$f" 2>/dev/null); '
    'if [ "$stopping" = 0 ] && [ "$now" != "$seen" ]; then '
    'seen=$now; restarted=1; echo "rota: restarting the service" >&2; '
    "end=$((SECONDS+grace)); kill -TERM -- -$child 2>/dev/null; "
    'while kill -0 -- -"$child" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1 & wait $!; done; '
    'kill -0 -- -"$child" 2>/dev/null && kill -KILL -- -"$child" 2>/dev/null; fi; '
    "sleep 1 & wait $!; "
    "done; "
    'wait "$child"; status=$?; '
    'if [ "$stopping" = 1 ]; then '
    'while kill -0 -- -"$child" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1 & wait $!; done; '
    'kill -0 -- -"$child" 2>/dev/null && kill -KILL -- -"$child" 2>/dev/null; '
    'exit "$status"; fi; '
    '[ "$restarted" = 1 ] && continue; '
    'exit "$status"; '
    "done"
)


def run_name(key: int) -> str:
    return f"rota-c-{key}"


def tcp_service_name(key: int) -> str:
    return f"rota-c-{key}-tcp"


def token_secret_name(key: int) -> str:
    return f"rota-c-{key}-env"


def port_name(service: ServiceSpec) -> str:
    """A port's name: at most 15 characters with a letter (IANA_SVC_NAME), where service names may
    have 32, so it is made from the protocol and the port number."""
    return f"{service.protocol or 'tcp'}-{service.port}"


def jupyter_argv(port: int, base_url: str, root: str) -> list[str]:
    """JupyterLab in the image (``jupyter`` on PATH), its token from ``JUPYTER_TOKEN``."""
    return [
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=0.0.0.0",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={base_url}",
        f"--ServerApp.root_dir={root}",
        # The portal (or the Ingress, which asks the portal) authenticates people and adds the token.
        "--ServerApp.allow_remote_access=True",
        "--ServerApp.terminals_enabled=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


def sshd_argv(port: int) -> list[str]:
    key = "$HOME/.ssh/rota_host_ed25519_key"
    script = (
        "command -v sshd >/dev/null || { echo 'sshd is not installed in this image: SSH is unavailable' >&2;"
        " exit 127; }; mkdir -p $HOME/.ssh; "
        f'[ -f "{key}" ] || ssh-keygen -q -t ed25519 -N "" -f "{key}"; '
        f'exec "$(command -v sshd)" -D -e -p {port} -h "{key}" -o PidFile=none'
        " -o AuthorizedKeysFile=$HOME/.ssh/authorized_keys -o PasswordAuthentication=no"
    )
    return ["sh", "-c", script]


class ContainerManifests:
    """Builds the objects of one container run in one namespace (see the module docstring)."""

    def __init__(
        self,
        *,
        namespace: str,
        image_pull_secrets: Sequence[str] = (),
        owner_label_prefix: str = "rota.dev",
        termination_grace_seconds: int = 10,
        default_image: str = "",
    ) -> None:
        self._namespace = namespace
        self._pull_secrets = tuple(image_pull_secrets)
        self._prefix = owner_label_prefix
        self._grace = termination_grace_seconds
        self._default_image = default_image
        self.label_container = f"{owner_label_prefix}/container"
        self.label_run = f"{owner_label_prefix}/container-run"
        self.label_user = f"{owner_label_prefix}/user"
        self.label_name = f"{owner_label_prefix}/container-name"
        self.annotation_stop_reason = f"{owner_label_prefix}/stop-reason"
        self.annotation_services = f"{owner_label_prefix}/services"

    def restart_annotation(self, service: str) -> str:
        return f"{self._prefix}/restart-{service}"

    def image(self, spec: ContainerSpec) -> str:
        return spec.image or self._default_image

    def labels(self, spec: ContainerSpec) -> dict[str, str]:
        return {
            self.label_container: str(spec.container_id),
            self.label_run: str(spec.key),
            self.label_user: sanitize_label_value(spec.owner),
            self.label_name: sanitize_label_value(spec.name),
        }

    def _metadata(self, name: str, spec: ContainerSpec, owner_uid: str | None = None) -> JsonDict:
        meta: JsonDict = {"name": name, "namespace": self._namespace, "labels": self.labels(spec)}
        if owner_uid:
            meta["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Service", "name": run_name(spec.key), "uid": owner_uid}
            ]
        return meta

    @staticmethod
    def http_services(spec: ContainerSpec) -> list[ServiceSpec]:
        return [s for s in spec.services if s.protocol == "http"]

    @staticmethod
    def tcp_services(spec: ContainerSpec) -> list[ServiceSpec]:
        return [s for s in spec.services if s.protocol == "tcp"]

    def build_service(self, spec: ContainerSpec) -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._metadata(run_name(spec.key), spec),
            "spec": {
                "type": "ClusterIP",
                "selector": {self.label_run: str(spec.key)},
                "ports": [
                    {"name": port_name(s), "port": s.port, "targetPort": s.port, "protocol": "TCP"}
                    for s in self.http_services(spec)
                ],
            },
        }

    def build_tcp_service(self, spec: ContainerSpec, owner_uid: str) -> JsonDict | None:
        """The NodePort Service of the run's TCP services that have a NodePort; None if none has."""
        ports = [
            {
                "name": port_name(s),
                "port": s.port,
                "targetPort": s.port,
                "nodePort": spec.node_ports[s.name],
                "protocol": "TCP",
            }
            for s in self.tcp_services(spec)
            if spec.node_ports.get(s.name)
        ]
        if not ports:
            return None
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": self._metadata(tcp_service_name(spec.key), spec, owner_uid),
            "spec": {
                "type": "NodePort",
                "externalTrafficPolicy": "Local",  # the pod is on one node; keep the client's address
                "selector": {self.label_run: str(spec.key)},
                "ports": ports,
            },
        }

    def build_secret(self, spec: ContainerSpec, owner_uid: str) -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": self._metadata(token_secret_name(spec.key), spec, owner_uid),
            "type": "Opaque",
            "immutable": True,
            "data": {JUPYTER_TOKEN_KEY: base64.b64encode(spec.token.encode()).decode()},
        }

    def _env(self, spec: ContainerSpec, service: ServiceSpec) -> list[JsonDict]:
        values = {
            **spec.env,
            **identity_env(user=spec.owner, home=spec.workspace),
            "SHELL": "/bin/bash",
            "ROTA_CONTAINER": spec.name,
            "ROTA_CONTAINER_ID": str(spec.container_id),
            "ROTA_SERVICE": service.name,
            "ROTA_RESTART_FILE": f"{RESTART_DIR}/{service.name}",
            "ROTA_STOP_GRACE_SECONDS": str(self._grace),  # SERVICE_WRAPPER's bound on a stop
        }
        if service.port and service.name != "jupyter":
            values["PORT"] = str(service.port)
        env: list[JsonDict] = [{"name": k, "value": v} for k, v in sorted(values.items())]
        if service.name == "jupyter":
            ref = {"name": token_secret_name(spec.key), "key": JUPYTER_TOKEN_KEY}
            env.append({"name": JUPYTER_TOKEN_KEY, "valueFrom": {"secretKeyRef": ref}})
        if spec.gpus == 0 or service.name != "jupyter":
            env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
        return env

    def service_argv(self, spec: ContainerSpec, service: ServiceSpec) -> list[str]:
        if service.name == "jupyter":
            return jupyter_argv(service.port, spec.base_url, spec.workspace)
        if service.name == "ssh":
            return sshd_argv(service.port)
        if service.name == "startup":
            return ["bash", "-c", spec.startup_script]
        return ["bash", "-c", service.command]

    def _resources(self, spec: ContainerSpec) -> JsonDict:
        # The admins' extended resources first, so they can never replace CPU, memory or GPUs.
        requests = extended_resources(spec.pod)
        limits = dict(requests)
        if spec.cpu > 0:
            requests["cpu"] = limits["cpu"] = cpu_quantity(spec.cpu)
        if spec.memory_bytes > 0:
            requests["memory"] = limits["memory"] = str(spec.memory_bytes)
        if spec.gpus > 0:  # whole GPUs: the device plugin hands out integers only
            requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(int(spec.gpus))
        return {"requests": requests, "limits": limits}

    def _volumes(self, spec: ContainerSpec) -> tuple[list[JsonDict], list[JsonDict]]:
        volumes, mounts = volumes_and_mounts(spec.mounts)
        items = [
            {
                "path": s.name,
                "fieldRef": {"fieldPath": f"metadata.annotations['{self.restart_annotation(s.name)}']"},
            }
            for s in spec.services
        ]
        volumes.append({"name": RESTART_VOLUME, "downwardAPI": {"items": items}})
        mounts.append({"name": RESTART_VOLUME, "mountPath": RESTART_DIR, "readOnly": True})
        return volumes, mounts

    def build_pod(self, spec: ContainerSpec, owner_uid: str) -> JsonDict:
        """The run's pod: one container per service in the shared pod spec (module docstring)."""
        self.validate(spec)
        volumes, mounts = self._volumes(spec)
        security = container_security_context(uid=spec.uid, gid=spec.gid, capabilities=spec.capabilities)
        containers: list[JsonDict] = []
        for service in spec.services:
            container: JsonDict = {
                "name": service.name,
                "image": self.image(spec),
                "command": ["bash", "-c", SERVICE_WRAPPER, "rota-service", *self.service_argv(spec, service)],
                "workingDir": spec.workspace,
                "env": self._env(spec, service),
                "resources": self._resources(spec) if service.name == "jupyter" else {},
                "volumeMounts": mounts,
                "securityContext": security,
            }
            if service.port:
                container["ports"] = [{"name": port_name(service), "containerPort": service.port, "protocol": "TCP"}]
            if service.name == "jupyter":
                container["readinessProbe"] = {"tcpSocket": {"port": service.port}, "periodSeconds": 2}
            containers.append(container)
        pod_spec = build_pod_spec(
            node=spec.node,
            uid=spec.uid,
            gid=spec.gid,
            options=spec.pod,
            containers=containers,
            volumes=volumes,
            grace_seconds=self._grace,
            pull_secrets=self._pull_secrets,
            hostname=run_name(spec.key),
        )
        meta = self._metadata(run_name(spec.key), spec, owner_uid)
        meta["annotations"] = {
            **pod_annotations(spec.pod, own_prefix=self._prefix),
            self.annotation_services: encode_services(spec.services),
        }
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec}

    def validate(self, spec: ContainerSpec) -> None:
        validate_pod(
            uid=spec.uid,
            gid=spec.gid,
            options=spec.pod,
            capabilities=spec.capabilities,
            mounts=spec.mounts,
            reserved_paths=(RESTART_DIR,),
        )
        if not self.image(spec):
            raise ValueError("no image: give the container an environment, or set ROTA_CONTAINER_IMAGE")
        if not spec.node:
            raise ValueError("the container has no node")
        names = [s.name for s in spec.services]
        if "jupyter" not in names or len(set(names)) != len(names):
            raise ValueError("a run needs JupyterLab and distinct service names")
        if spec.cpu < 0 or spec.memory_bytes < 0 or spec.gpus < 0:
            raise ValueError("resources must be >= 0")


def encode_services(services: Sequence[ServiceSpec]) -> str:
    """The run's services in rank order, ``name:protocol:port,…`` (a pod annotation: after a
    restart the backend reads from the pod which container is which log and which is HTTP)."""
    return ",".join(f"{s.name}:{s.protocol}:{s.port}" for s in sorted(services, key=lambda s: s.rank))


def decode_services(value: str) -> list[tuple[str, str, int]]:
    """(name, protocol, port) in rank order; malformed parts are skipped."""
    found: list[tuple[str, str, int]] = []
    for part in filter(None, (value or "").split(",")):
        name, _, rest = part.partition(":")
        protocol, _, port = rest.partition(":")
        if name and port.isdigit():
            found.append((name, protocol, int(port)))
    return found
