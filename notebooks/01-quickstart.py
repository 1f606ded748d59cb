# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Quickstart: plan the default scenario
#
# `solver.load_scenario()` without an argument returns the embedded default scenario (the one
# `infersave plan` solves): an online chat service and a nightly batch job on Llama 3.1 8B, on-demand
# instances in one region. `solver.plan` enumerates every (instance type, TP degree, batch size,
# KV offload fraction) configuration, predicts its memory and latency with the calibrated performance
# model, and solves a MILP for the cheapest fleet that meets every SLO and demand.

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd

import solver
from solver import evaluate, plan
from solver.planning.plan import FLEET_FIELDS

pd.set_option("display.width", 160)
pd.set_option("display.max_columns", 30)

# %% [markdown]
# ## The scenario

# %%
scenario = solver.load_scenario()
workloads = pd.DataFrame(
    [
        {
            "workload": w.name,
            "kind": w.kind,
            "model": w.model,
            "input_tokens": w.input_tokens,
            "output_tokens": w.output_tokens,
            "rate_rps": w.rate_rps,
            "requests": w.requests,
            "deadline_h": w.deadline_h,
            **{f"slo.{k}": v for k, v in w.slo.model_dump().items() if v is not None},
        }
        for w in scenario.workloads
    ]
)
print(f"catalog {scenario.catalog}, regions {scenario.regions}, markets {scenario.markets}, engine {scenario.engine}")
print(f"limits: {scenario.limits.model_dump(exclude_defaults=True)}")
print(f"online $/h is costed over {scenario.effective_horizon_h:g} h (the longest offline deadline)")
workloads

# %% [markdown]
# ## Plan the fleet

# %%
result = plan(scenario, solver.SolveOptions(time_limit_s=20))
print(
    f"status {result.status} ({result.backend}, {result.solve_seconds:.2f} s, {result.candidates} candidates); "
    f"{result.cost_usd_per_hour:.2f} USD/h with everything running, "
    f"{result.total_cost_usd:.2f} USD over the {result.horizon_h:g} h horizon"
)
fleet = result.to_frame()
fleet[list(FLEET_FIELDS)]

# %% [markdown]
# Each row is `count` instances of one type serving one workload with one configuration: `tp` GPUs
# per model copy, a static batch of `batch_size` sequences and a share `offload_fraction` of the KV cache
# kept in host memory. `ttft_ms`/`tpot_ms` are the predicted latencies (they must sit below the
# workload's SLO) and `utilisation` the share of the rows' sustainable capacity that the demand uses.
#
# The evaluator re-checks the plan with the exact (non-linearised) model: memory, SLOs, demand,
# deadlines and limits.

# %%
check = evaluate(result, scenario)
print("exact re-check:", check)

# %% [markdown]
# ## Where the money goes
#
# Online rows cost their hourly price times the horizon; offline rows cost the instance-hours they are
# billed for. Dividing by the tokens each workload generates gives its cost per million output tokens.

# %%
by_type = fleet.pivot_table(index="workload", columns="instance_type", values="cost_usd", aggfunc="sum").fillna(0.0)
tokens = {
    w.name: (w.rate_rps * 3600 * result.horizon_h if w.kind == "online" else w.requests) * w.output_tokens
    for w in scenario.workloads
}
spend = fleet.groupby("workload")["cost_usd"].sum()
per_mtok = spend / pd.Series(tokens) * 1e6

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
by_type.plot.bar(stacked=True, ax=ax1, rot=0)
ax1.set_ylabel(f"cost over {result.horizon_h:g} h (USD)")
ax1.set_title("Cost by workload, split by instance type")
ax1.legend(title="instance type", fontsize=8)
per_mtok.reindex(by_type.index).plot.bar(ax=ax2, rot=0, color="tab:gray")
ax2.set_ylabel("USD per million output tokens")
ax2.set_title("Unit cost by workload")
for ax in (ax1, ax2):
    ax.grid(axis="y", alpha=0.3)
fig.tight_layout()
plt.show()

# %%
total = spend.sum()
for name, usd in spend.sort_values(ascending=False).items():
    rows = fleet[fleet["workload"] == name]
    types = ", ".join(f"{n}x {t}" for t, n in rows.groupby("instance_type")["count"].sum().items())
    print(
        f"{name}: {usd:.2f} USD ({usd / total:.0%} of the total) on {types}; "
        f"{per_mtok[name]:.3f} USD per million output tokens"
    )

# %% [markdown]
# **Reading.** The printout ranks the workloads by spend and gives each one's unit cost. An online workload
# pays for its instances over the whole horizon, sized for its rate with headroom (`search.utilisation_cap`),
# while an offline job pays only for the instance-hours it needs to finish by its deadline. The unit cost
# is per generated token, so a workload with long prompts relative to its outputs also pays for their
# prefill in that figure. The instance types can differ between workloads because latency SLOs limit the
# batch size of an online workload, whereas a batch job is sized for throughput alone.
