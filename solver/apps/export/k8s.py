"""Kubernetes export: a Deployment and a Service per fleet row, running vLLM's OpenAI server.

One pod per planned instance (``spec.replicas`` = the row's count), pinned to the instance type, region and
market with well-known node labels (``node.kubernetes.io/instance-type``, ``topology.kubernetes.io/region``, and
EKS's ``eks.amazonaws.com/capacityType``), asking for the instance's GPUs (``nvidia.com/gpu``), with the same
vLLM arguments as the SkyPilot export. Apply with ``kubectl apply -f FILE``.
"""

from __future__ import annotations

from typing import Any

from solver.apps.export.common import SERVE_PORT, Deployment, slug
from solver.apps.export.yamltext import dump

IMAGE = "vllm/vllm-openai:latest"
"""vLLM's published OpenAI-server image (hub.docker.com/r/vllm/vllm-openai); pin a version for production."""


def manifests(d: Deployment) -> list[dict[str, Any]]:
    """Return the Deployment and the Service of one fleet row."""
    labels = {"app": d.name, "infersave/workload": slug(d.workload)}
    gpus = {"nvidia.com/gpu": d.gpus_per_instance}
    container = {
        "name": "vllm",
        "image": IMAGE,
        "command": ["vllm", "serve"],
        "args": [d.model, *d.vllm_args()],
        "ports": [{"containerPort": SERVE_PORT, "name": "http"}],
        "resources": {"limits": dict(gpus), "requests": dict(gpus)},
        "readinessProbe": {"httpGet": {"path": "/health", "port": SERVE_PORT}, "periodSeconds": 10},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": d.name, "labels": labels},
        "spec": {
            "replicas": d.instances,
            "selector": {"matchLabels": {"app": d.name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": {
                        "node.kubernetes.io/instance-type": d.instance_type,
                        "topology.kubernetes.io/region": d.region,
                        "eks.amazonaws.com/capacityType": "SPOT" if d.market == "spot" else "ON_DEMAND",
                    },
                    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [container],
                    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": d.name, "labels": labels},
        "spec": {"selector": {"app": d.name}, "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": "http"}]},
    }
    return [deployment, service]


def render(d: Deployment) -> str:
    """Return the Deployment and Service YAML of one fleet row, with what it was planned for as comments."""
    comments = [
        f"infersave export: workload {d.workload} ({d.kind}) on {d.instances} x {d.instance_type} "
        f"({d.market}, {d.region}), {d.replicas_per_instance} vLLM replica(s) per pod, TP {d.tp}, "
        f"batch {d.batch_size}",
        f"apply: kubectl apply -f {d.name}.yaml",
        *d.notes,
    ]
    return dump(manifests(d), comments)
