"""Multi-rank PyTorch DDP on CPUs (gloo): one process per rank, as Rota starts them.

    rota submit examples/ddp_gloo.py -- -n 2 --name ddp --follow

Rota sets WORLD_SIZE (number of nodes), RANK, MASTER_ADDR and MASTER_PORT for every rank, which is
exactly what ``torch.distributed``'s ``env://`` initialisation reads. Needs ``torch`` in the job's
environment (on the local backend: the interpreter of the environment, ``python3``).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from rota import job


def main() -> None:
    dist.init_process_group("gloo", init_method="env://")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    model = DistributedDataParallel(nn.Linear(16, 1))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05)
    start = job.get_whole_life_state()
    for step in range(start + 1, 201):
        x = torch.randn(64, 16) + rank
        loss = (model(x) - x.sum(dim=1, keepdim=True)).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 20 == 0:
            if rank == 0:
                job.set_whole_life_state(step)
                job.log_metrics(step, loss=float(loss))
            print(f"rank {rank}/{world} step {step} loss {loss.item():.4f}", flush=True)
        if job.receive_suspend_command():
            if rank == 0:
                job.set_whole_life_state(step)
            job.go_suspend()
    dist.destroy_process_group()
    print(f"rank {rank}: done (MASTER_ADDR={os.environ['MASTER_ADDR']})", flush=True)


if __name__ == "__main__":
    main()
