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
# # 06 · Simulation: a plan's fleet under random arrivals, over time
#
# `infersave plan` checks every plan it returns by simulating its traffic (`solver.simulation`). This notebook
# simulates the plan of the shipped `chat_distribution` example — a chat workload with a size distribution
# whose buckets share replicas with an API workload — and plots the utilisation and queue length of its
# fleet over time, then the same fleet under bursty arrivals, and last the *capacity curve* of one candidate:
# the p99 TTFT against the arrival rate, from the queueing approximation the planner uses for percentile SLOs
# and from the simulator.

# %%
# %matplotlib inline
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import solver
from solver.data.resources import data_path
from solver.simulation import arrivals, capacity
from solver.simulation.fleet import simulate_workload, workload_replicas

pd.set_option("display.width", 160)
scenario = solver.load_scenario(data_path("scenarios", "chat_distribution.yaml"))
plan = solver.plan(scenario, verify=True)
print(plan.message)
plan.to_frame()[["workload", "instance_type", "count", "batch_size", "pool", "utilisation"]]

# %% [markdown]
# ## Attainment per request class
#
# Each bucket of the chat distribution is a request class (`chat#k`). Classes routed to a shared (pooled) row
# are simulated together on its replicas, each with its own arrivals and lengths.

# %%
result = solver.simulate(scenario, plan, seed=1)
table = result.attainment_frame()
table[["workload", "slo", "limit", "statistic", "simulated", "p50", "p99", "met"]].round(1)

# %% [markdown]
# ## Utilisation and queue length over time
#
# `timeseries_frame()` has, per class and time bin, the utilisation of the replicas that served it — `busy`,
# the share of time they computed (with continuous batching a replica with one running request computes all
# the time), and `occupancy`, the share of their batch slots in use — and the number of its requests waiting
# for a batch slot (`queue_length`). Below, occupancy and queue length. Here: the API workload (on the shared row) and the
# dedicated partner workload, under Poisson arrivals and under bursty arrivals (gamma gaps, cv 3) at the same
# mean rate.

# %%
bursty = scenario.model_copy(
    update={
        "workloads": [
            w.model_copy(update={"arrival": w.arrival.model_copy(update={"process": "gamma", "cv": 3.0})})
            for w in scenario.workloads
        ]
    }
)
runs = {"Poisson": result, "bursty (cv 3)": solver.simulate(bursty, plan, seed=1)}
fig, axes = plt.subplots(2, 2, figsize=(11, 6), sharex=True)
for col, (label, res) in enumerate(runs.items()):
    ts = res.timeseries_frame()
    for name in ("api", "partner"):
        part = ts[ts["workload"] == name]
        axes[0, col].plot(part["t_s"], part["occupancy"], label=name)
        axes[1, col].step(part["t_s"], part["queue_length"], where="post", label=name)
    axes[0, col].set_title(label)
    axes[0, col].set_ylabel("batch slots in use (share)")
    axes[1, col].set_ylabel("requests queued")
    axes[1, col].set_xlabel("time (s)")
    axes[0, col].legend()
fig.tight_layout()

# %%
pd.DataFrame(
    {label: {w.workload: w.stats["ttft_ms"]["p99"] for w in res.workloads} for label, res in runs.items()}
).loc[["api", "partner", "chat#1"]].round(0).rename_axis("p99 TTFT (ms)")

# %% [markdown]
# ## A capacity curve
#
# A p99 SLO is met at a lower rate than a mean SLO: requests wait for a batch slot. The planner reads each
# candidate's sustainable rate off a queueing approximation (GI/M/c, `solver/simulation/capacity.py`) where
# it crosses the SLO. The dedicated partner row's candidate, its p99 TTFT against the arrival rate. The
# approximation's floor is the candidate's own TTFT constant (predicted for the prefill of a full batch), so at
# light load it is pessimistic (a lone request prefills alone in the simulator); where the curve crosses the
# limit — the point the planner uses — the two agree (`tests/test_capacity_curve.py` checks a set of
# candidates within 35 %).

# %%
partner = next(w for w in scenario.workloads if w.name == "partner")
row = next(r for r in plan.fleet if r.workload == "partner")
(config,) = workload_replicas(scenario, partner, [dataclasses.replace(row, count=1, replicas=1)])
fractions = np.linspace(0.1, 0.95, 8)
rates = fractions * row.rate_rps
sim_p99 = []
for rate in rates:
    source = arrivals.poisson(rate, 3000 / rate, partner.input_tokens, partner.output_tokens, seed=2)
    res = simulate_workload(partner, [config], source, duration_s=3000 / rate, warmup_s=300 / rate)
    sim_p99.append(res.stats["ttft_ms"]["p99"])
fine = np.linspace(0.02, 0.99, 200) * row.rate_rps
wait = capacity.wait_quantile_s(fine, np.full(fine.size, row.batch_size), row.batch_size / row.rate_rps, 99, 1.0)
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(fine, row.ttft_ms + 1e3 * wait, label="queueing approximation")
ax.plot(rates, sim_p99, "o", label="simulator")
ax.axhline(partner.slo.ttft_ms, color="grey", ls="--", label="TTFT limit")
ax.set_xlabel("arrival rate (req/s), one replica")
ax.set_ylabel("p99 TTFT (ms)")
ax.set_yscale("log")
ax.legend()
ax.set_title(f"partner on {row.instance_type}, batch {row.batch_size}")
