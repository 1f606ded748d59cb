"""SkyPilot export: one SkyServe service YAML per fleet row.

The file is a SkyPilot task (https://docs.skypilot.co/en/latest/reference/yaml-spec.html) with a ``service:``
section: ``resources`` pins the row's cloud, region, instance type, accelerators and market (``use_spot``),
``service.replicas`` is the row's instance count, and ``run`` starts vLLM with the plan's TP degree, batch
(``--max-num-seqs``), context (``--max-model-len``), dtype and GPU memory fraction. Launch with
``sky serve up FILE``. ``tests/test_export.py`` loads every file with SkyPilot's own ``sky.Task.from_yaml``.
"""

from __future__ import annotations

import shlex
from typing import Any

from solver.apps.export.common import SERVE_PORT, Deployment
from solver.apps.export.yamltext import dump


def service_config(d: Deployment) -> dict[str, Any]:
    """Return the SkyServe task of one deployment as a dict (keys in the YAML's order).

    ``resources.cloud`` is ``aws`` for the shipped catalog (SkyPilot's AWS catalog); a custom catalog's rows
    have no cloud, and SkyPilot finds the instance type among the enabled clouds.
    """
    resources: dict[str, Any] = {}
    if d.cloud:
        resources["cloud"] = d.cloud
    resources.update(
        region=d.region,
        instance_type=d.instance_type,
        accelerators=f"{d.gpu}:{d.gpus_per_instance}",
        use_spot=d.market == "spot",
        ports=SERVE_PORT,
    )
    command = " ".join(["vllm serve", '"$MODEL"', *(shlex.quote(a) for a in d.vllm_args())])
    return {
        "name": d.name,
        "resources": resources,
        "envs": {"MODEL": d.model},
        "setup": "pip install vllm",
        "run": command + "\n",
        "service": {"readiness_probe": "/health", "replicas": d.instances},
    }


def render(d: Deployment) -> str:
    """Return the SkyServe YAML text of one deployment, with what it was planned for as comments."""
    comments = [
        f"infersave export: workload {d.workload} ({d.kind}) on {d.instances} x {d.instance_type} "
        f"({d.market}, {d.region}), {d.replicas_per_instance} vLLM replica(s) per instance, TP {d.tp}, "
        f"batch {d.batch_size}",
        f"launch: sky serve up {d.name}.yaml",
        *d.notes,
    ]
    if d.model_is_path:
        comments.append("MODEL is a local folder: mount the weights there (file_mounts) before launching")
    return dump([service_config(d)], comments)
