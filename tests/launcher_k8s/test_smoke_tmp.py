import json
from apps.launcher.backends.base import LaunchSpec, RankSpec, EntrypointKind
from .conftest import NAMESPACE

def test_smoke(kube, make_backend, core):
    b = make_backend()
    spec = LaunchSpec(attempt_id=7, chain_id="c1", user="alice", uid=1000, workspace="/w", kind=EntrypointKind.PYTHON,
        entrypoint="train.py", parameters=("--x",), interpreter="python3", image="img",
        ranks=(RankSpec(0, "n1", {"RANK": "0", "ROTA_TASK_TOKEN": "tok"}), RankSpec(1, "n2", {"RANK": "1"})), gpus_per_rank=8)
    b.start(spec)
    print(json.dumps(kube.get("v1/services", NAMESPACE, "rota-7"), indent=1))
    print(json.dumps(kube.get("v1/pods", NAMESPACE, "rota-7-1"), indent=1)[:3000])
    print([ (r.method.value, str(r.url)) for r in kube.requests()])
    print(b.observe(7))
