"""Turn a saved plan into deployment files: SkyPilot/SkyServe YAML or Kubernetes manifests, one file per fleet row.

``infersave export PLAN.json --to skypilot|k8s --out DIR [--scenario SCENARIO.yaml]``. The plan gives each row's
instance type, market, region, instance count, replicas per instance, TP degree and batch; the scenario gives
what the plan does not hold: the model to serve, its dtype and the token lengths (``--max-model-len``). Every
engine argument a row's prediction assumed is written out (:func:`deployment_rows`), so the deployment runs the
configuration that was planned. Existing files in ``DIR`` are never replaced unless ``force``.
"""

from __future__ import annotations

from solver.apps.export.common import Deployment, deployment_rows
from solver.apps.export.write import TARGETS, export_plan

__all__ = ["TARGETS", "Deployment", "deployment_rows", "export_plan"]
