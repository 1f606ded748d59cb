"""``infersave recommend``: the single instance that meets a TPS target at the best cost efficiency.

This is InferSave's question (Kim et al., arXiv 2504.11816; released code ``lass-lab/InferSave``,
``Infersave_ver0.1.py`` @466e6546, ``select_best_instance``): for one model, batch size and token lengths,
which one instance meets a tokens-per-second SLO at the lowest cost, and how much KV cache it must offload.

The answer is a :class:`Recommendation` value. How the instances are chosen is a *policy*, looked up in
:data:`POLICIES` (a registry, in the order the CLI lists them; the first, ``milp``, is the default, as issue 5
asks):

``milp`` (default)
    Our fleet planner (:func:`solver.planning.planner.plan`) on the same scenario restricted to one instance
    (``limits.max_total_instances = 1``): the cheapest task (price · billed hours) whose predicted TPS meets the
    SLO within the workload's deadline; the next choices come from re-solving without the instances already
    chosen. Its choices are reported with the same task cost and cost efficiency as the other policies.
``infersave``
    The paper's algorithm. (1) Price filter: drop offers above ``P_max``. (2) Memory check: the smallest KV
    offload fraction ``f`` that fits the GPU (:mod:`solver.performance.memory`); drop instances that cannot hold the
    weights, or one layer's KV cache next to them (the paper's rule: ``room_for_kv >= kv_total / L``), or whose
    host memory cannot take the offloaded part. (3) Predict TPS with the calibrated model (CTCF) through
    :func:`solver.performance.model.predict_frame`. (4) Keep those meeting the SLO. (5) Rank by cost efficiency, ties
    to the higher TPS.
``no-offload``
    The same with ``f = 0``: instances whose KV cache does not fit in GPU memory are dropped (the paper's
    "InferSave without KV offloading" baseline).
``max-performance``
    The paper's Max-Performance baseline: the most powerful instance, whatever it costs. *Most powerful* is
    defined here as the highest predicted TPS of this workload (with the offload it needs), ties to the higher
    peak dense FP16 tensor TFLOPS (``instances/gpus.csv``), then the lower price. The price filter and the
    memory check still apply (an instance that cannot run the model is not powerful); the SLO does not: the
    choice is reported with ``meets_slo``.

Task cost and cost efficiency (issue 5: "effective TPS (min of predicted and SLO) per dollar, with the billed
hours of the task")::

    task_hours      = requests · (input + output) / (predicted_tps · 3600)     (the task's run time)
    billed_hours    = ceil(task_hours)           (billing: per_hour; per_second bills task_hours)
    task_cost_usd   = billed_hours · usd_per_hour
    effective_tps   = min(predicted_tps, tps_slo)
    cost_efficiency = effective_tps / task_cost_usd          (TPS per dollar)

Savings compare task costs. The released code (``evaluate_instance``) instead computes the task time from the
capped ``effective_tps``, which charges a fast instance for the hours it would take at the SLO rather than the
hours it runs; we bill the run time, as the issue states.

Capping the TPS at the SLO means a faster instance earns nothing for being faster than required, so among
instances that meet the SLO the ranking is by task cost (ties to the higher TPS). Other differences from the
released code, on purpose: its offload ratio is inflated by 1.6 and rounded up to a tenth ("adjust more
conservatively by 60%"), a constant without a source, so we use the smallest fraction that fits; its task is
one batch, ours is the scenario's ``requests``.

The package: :mod:`~solver.apps.recommend.task` (the question and its task cost),
:mod:`~solver.apps.recommend.screen` (InferSave's steps 1-3 for every instance),
:mod:`~solver.apps.recommend.policies` (the registry), :mod:`~solver.apps.recommend.result` (the answer), and
:func:`recommend` here.

Multi-GPU instances are evaluated as one tensor-parallel replica on all their GPUs (the largest power of two
dividing the GPU count; 1 on a GPU slice); the ``milp`` policy considers every TP degree and replica count.
"""

from __future__ import annotations

from solver.apps.recommend.policies import DEFAULT_POLICY, POLICIES, Context, Policy, get_policy
from solver.apps.recommend.result import (
    CHOICE_EXTRA_KEYS,
    CHOICE_KEYS,
    QUESTION_KEYS,
    REJECTED_KEYS,
    Choice,
    Recommendation,
    Rejection,
)
from solver.apps.recommend.screen import screen
from solver.apps.recommend.task import recommend_scenario, task_costs, task_of
from solver.errors import InputError
from solver.specs import Scenario, SolveOptions


def recommend(
    scenario: Scenario,
    policy: str = DEFAULT_POLICY,
    *,
    top_k: int | None = None,
    options: SolveOptions | None = None,
) -> Recommendation:
    """Recommend single instances for the scenario's one workload, best first.

    Parameters
    ----------
    scenario
        One workload with one batch size; its ``slo.tps`` is the TPS SLO, ``requests`` the task size
        (default: one batch), ``limits.max_price_usd_per_hour`` P_max, ``billing`` how hours are charged.
        Build one from CLI-style values with :func:`recommend_scenario`.
    policy
        A key of :data:`POLICIES`.
    top_k
        Keep at most this many choices (``None``: all).
    options
        Solver options of the ``milp`` policy.

    Returns
    -------
    Recommendation
        Choices best first and the rejected instances with reasons; ``to_dict()`` is the JSON output.

    Raises
    ------
    InputError
        The scenario does not ask one question (several workloads or batch sizes), or ``top_k < 1``.
    UnknownNameError
        An unknown policy.
    """
    pol = get_policy(policy)
    if top_k is not None and top_k < 1:
        raise InputError("top_k", f"must be >= 1, got {top_k}")
    task = task_of(scenario)
    choices, rejected = pol.select(Context(task, options, top_k))
    if top_k is not None:
        choices = choices[:top_k]
    w = task.workload
    return Recommendation(
        policy=pol.name,
        choices=tuple(choices),
        rejected=tuple(rejected),
        model=task.model.name,
        batch_size=task.batch_size,
        input_tokens=w.input_tokens,
        output_tokens=w.output_tokens,
        tps_slo=task.tps_slo,
        requests=task.requests,
        billing=scenario.billing,
    )


__all__ = [
    "CHOICE_EXTRA_KEYS",
    "CHOICE_KEYS",
    "DEFAULT_POLICY",
    "POLICIES",
    "QUESTION_KEYS",
    "REJECTED_KEYS",
    "Choice",
    "Policy",
    "Recommendation",
    "Rejection",
    "get_policy",
    "recommend",
    "recommend_scenario",
    "screen",
    "task_costs",
    "task_of",
]
