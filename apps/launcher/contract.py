"""The job contract: the environment every rank gets (Rota's variables and HAI's ``MARSV2_*`` twins).

Order, later wins: the environment's defaults, the user's own variables, then the platform's
variables (users cannot override those: submit refuses it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from django.conf import settings

from apps.experiments.models import Attempt, Chain


@dataclass(frozen=True)
class RankPlacement:
    rank: int
    node: str
    gpus: tuple[int, ...]


def local_gpu_count() -> int:
    """Real NVIDIA GPUs visible on this machine (0 when there are none)."""
    explicit = os.environ.get("ROTA_LOCAL_GPUS")
    if explicit is not None:
        return max(0, int(explicit or 0))
    count = 0
    while os.path.exists(f"/dev/nvidia{count}"):
        count += 1
    return count


def rank_env(
    *,
    chain: Chain,
    attempt: Attempt,
    placement: RankPlacement,
    world_size: int,
    master_addr: str,
    token: str,
    log_dir: str,
    env_defaults: dict[str, str],
    procs_per_node: int = 1,
) -> dict[str, str]:
    """The full environment of one rank (one rank = one node; ``procs_per_node`` = its GPUs)."""
    api_url = settings.ROTA_PUBLIC_URL.rstrip("/")
    port = str(settings.ROTA_LAUNCHER["MASTER_PORT"])
    env: dict[str, str] = {}
    env.update({k: str(v) for k, v in env_defaults.items()})
    env.update({k: str(v) for k, v in chain.env_vars.items()})
    platform = {
        "WORLD_SIZE": str(world_size),
        "RANK": str(placement.rank),
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": port,
        # torchrun's own variables, so `torchrun train.py` in a rank needs no arguments.
        "PET_NNODES": str(world_size),
        "PET_NODE_RANK": str(placement.rank),
        "PET_NPROC_PER_NODE": str(max(1, procs_per_node)),
        "LOCAL_WORLD_SIZE": str(max(1, procs_per_node)),
        "ROTA_TASK_ID": str(attempt.pk),
        "ROTA_CHAIN_ID": str(chain.pk),
        "ROTA_NB_NAME": chain.name,
        "ROTA_WHOLE_LIFE_STATE": str(attempt.whole_life_state),
        "ROTA_RESTART_COUNT": str(attempt.index),
        "ROTA_LOG_DIR": log_dir,
        "ROTA_API_URL": api_url,
        "ROTA_TASK_TOKEN": token,
        "ROTA_NODE_NAME": placement.node,
        "ROTA_GROUP": chain.node_group.name,
        "ROTA_USER": chain.owner.username,
        "ROTA_PRIORITY": str(
            attempt.effective_priority if attempt.effective_priority is not None else attempt.priority
        ),
        # HAI's names, so HAI-era scripts run unchanged.
        "MARSV2_TASK_ID": str(attempt.pk),
        "MARSV2_CHAIN_ID": str(chain.pk),
        "CHAIN_ID": str(chain.pk),
        "MARSV2_NB_NAME": chain.name,
        "MARSV2_NB_GROUP": chain.node_group.name,
        "MARSV2_WHOLE_LIFE_STATE": str(attempt.whole_life_state),
        "MARSV2_RANK": str(placement.rank),
        "MARSV2_NODE_NAME": placement.node,
        "NODE_NAME": placement.node,
        "MARSV2_LOG_DIR": log_dir,
        "MARSV2_SERVER": api_url,
        "MARSV2_USER_TOKEN": token,
        "MARSV2_USER": chain.owner.username,
        "MARSV2_USER_ROLE": chain.owner.role,
        "MARSV2_TASK_TYPE": "training",
        "MARSV2_TASK_WORKSPACE": chain.workspace,
        "MARSV2_TASK_ENTRYPOINT": chain.entrypoint,
        "MARSV2_TASK_BACKEND": chain.environment_name,
    }
    if settings.ROTA_BACKEND == "local":
        platform["MASTER_IP"] = master_addr  # on kubernetes rank 0's address comes from DNS
        # Jobs on this machine can `import rota.job` without installing the client package.
        client_dir = str(settings.BASE_DIR / "client")
        existing = env.get("PYTHONPATH", "")
        platform["PYTHONPATH"] = f"{client_dir}:{existing}" if existing else client_dir
    env.update(platform)
    if placement.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in placement.gpus)
    return env
