"""A pure-Python "training" job that checkpoints, honours suspend and resumes.

    rota submit examples/train_checkpoint.py --steps 300 -- -n 1 -p NORMAL --name demo --follow

It "trains" a tiny linear model with SGD, saves a checkpoint in its workspace every few steps,
tells the platform (``set_whole_life_state`` carries the step to the next attempt), reports
metrics, and on a suspend notice saves and calls ``go_suspend()`` so its nodes are freed at once.
The next attempt continues from the saved step. Runs unchanged on a laptop (the calls are no-ops).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

from rota import job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--every", type=int, default=10, help="checkpoint every N steps")
    parser.add_argument("--step-seconds", type=float, default=0.05)
    args = parser.parse_args()

    rank = int(os.environ.get("RANK", "0"))
    chain = os.environ.get("ROTA_CHAIN_ID", "local")
    checkpoint = Path(f"checkpoint-{chain}-rank{rank}.json")

    start = job.get_whole_life_state()
    weights = {"w": 0.0, "b": 0.0}
    if start and checkpoint.exists():
        saved = json.loads(checkpoint.read_text())
        weights, start = saved["weights"], saved["step"]
        print(f"rank {rank}: resuming from step {start} (checkpoint {checkpoint})", flush=True)
    else:
        print(f"rank {rank}: starting fresh", flush=True)

    rng = random.Random(start)
    lr = 0.01
    for step in range(start + 1, args.steps + 1):
        x = rng.uniform(-1, 1)
        y = 3.0 * x + 0.5
        pred = weights["w"] * x + weights["b"]
        err = pred - y
        weights["w"] -= lr * err * x
        weights["b"] -= lr * err
        time.sleep(args.step_seconds)

        if step % args.every == 0 or step == args.steps:
            checkpoint.write_text(json.dumps({"step": step, "weights": weights}))
            if rank == 0:
                job.set_whole_life_state(step)
                job.report_checkpoint()
                job.log_metrics(step, loss=err * err, w=weights["w"], b=weights["b"])
            print(f"rank {rank}: step {step} loss {err * err:.5f}", flush=True)

        if job.receive_suspend_command():
            checkpoint.write_text(json.dumps({"step": step, "weights": weights}))
            if rank == 0:
                job.set_whole_life_state(step)
            print(f"rank {rank}: suspend requested at step {step}; checkpoint saved", flush=True)
            job.go_suspend()

    print(f"rank {rank}: done, w={weights['w']:.3f} b={weights['b']:.3f}", flush=True)


if __name__ == "__main__":
    main()
