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
# # 05 · Fleet mix: a mixed fleet against the best single instance type, spot against on-demand
#
# The shipped scenario `instances/scenarios/mixed_spot.yaml` has two online workloads on different models
# (an assistant on Llama 3.1 8B and a summariser on Mistral 7B), two regions, on-demand and spot markets and
# per-family and per-region quotas. The planner may mix any instance types. How much does that mixing buy
# compared with the best fleet built from one instance type, and how much does the spot market save?

# %%
# %matplotlib inline
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import solver
from solver import build_candidates, plan, sweep
from solver.data.resources import data_path
from solver.planning.plan import FLEET_FIELDS

pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 100)
OPTIONS = solver.SolveOptions(time_limit_s=10)
SOLVED = ("optimal", "feasible")

# %%
scenario = solver.load_scenario(data_path("scenarios", "mixed_spot.yaml"))
print(f"regions {scenario.regions}, markets {scenario.markets}, spot price = {scenario.spot_price} over zones")
print(f"limits: {scenario.limits.model_dump(exclude_defaults=True)}")
for w in scenario.workloads:
    print(
        f"  {w.name}: {w.model}, {w.input_tokens} in / {w.output_tokens} out, {w.rate_rps:g} req/s, SLO {w.slo.model_dump(exclude_none=True)}"
    )

# %% [markdown]
# ## The mixed fleet

# %%
mixed = plan(scenario, OPTIONS)
print(f"{mixed.status}: {mixed.cost_usd_per_hour:.2f} USD/h")
mixed.to_frame()[list(FLEET_FIELDS)]

# %% [markdown]
# ## Each instance type alone, on each market
#
# Restrict `instances` to one type at a time (every type that has at least one candidate configuration)
# and `markets` to on-demand or spot: one sweep, one MILP per point. A type that cannot serve a workload
# within the SLOs, memory and quotas comes back with status `infeasible` and the reason. Rows come back in
# grid order, so each row's type and market are read from its position.

# %%
TYPES = sorted(build_candidates(scenario)["instance_type"].unique())
MARKETS = [["on_demand"], ["spot"]]
single = sweep(scenario, {"instances": [[t] for t in TYPES], "markets": MARKETS}, OPTIONS, processes=2)
single["instance_type"] = np.repeat(TYPES, len(MARKETS))
single["market"] = [m[0] for m in MARKETS] * len(TYPES)
solved_single = single[single["status"].isin(SOLVED)]
print(
    f"{len(TYPES)} instance types x {len(MARKETS)} markets: {len(solved_single)} single-type fleets meet every SLO and quota"
)
single.groupby("status").size()

# %%
by_market = sweep(scenario, {"markets": [["on_demand"], ["spot"], ["on_demand", "spot"]]}, OPTIONS, processes=1)
by_market["label"] = ["on-demand only", "spot only", "both markets"]
by_market[["label", "status", "cost_usd_per_hour", "composition"]]

# %%
TOP = 10
fig, axes = plt.subplots(1, 2, figsize=(14, 5))
mixed_cost = by_market.set_index("label")["cost_usd_per_hour"]
for ax, market, label in zip(axes, ("on_demand", "spot"), ("on-demand only", "spot only"), strict=True):
    part = solved_single[solved_single["market"] == market].nsmallest(TOP, "cost_usd_per_hour")
    ax.barh(part["instance_type"], part["cost_usd_per_hour"], color="tab:orange" if market == "spot" else "tab:blue")
    for y, (_, r) in enumerate(part.iterrows()):
        ax.annotate(
            re.sub(r" \(\w+\)", "", r["composition"]),
            (r["cost_usd_per_hour"], y),
            xytext=(3, -3),
            textcoords="offset points",
            fontsize=7,
        )
    if np.isfinite(mixed_cost.get(label, np.nan)):
        ax.axvline(mixed_cost[label], color="black", ls="--", label=f"mixed fleet, {label}")
    ax.invert_yaxis()
    ax.set_xlabel("fleet cost (USD/h)")
    ax.set_title(f"{label}: the {TOP} cheapest single-type fleets")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
best_single = [solved_single[solved_single["market"] == m]["cost_usd_per_hour"].min() for m in ("on_demand", "spot")]
x = np.arange(2)
ax.bar(x - 0.2, best_single, width=0.4, label="best single type", color="0.6")
ax.bar(
    x + 0.2, [mixed_cost["on-demand only"], mixed_cost["spot only"]], width=0.4, label="mixed fleet", color="tab:green"
)
ax.set_xticks(x, ["on-demand", "spot"])
ax.set_ylabel("fleet cost (USD/h)")
ax.legend(fontsize=8)
ax.grid(axis="y", alpha=0.3)
ax.set_title("Mixed against single-type fleets")
fig.tight_layout()
plt.show()

for market, label in (("on_demand", "on-demand only"), ("spot", "spot only")):
    part = solved_single[solved_single["market"] == market]
    if part.empty or not np.isfinite(mixed_cost[label]):
        print(f"{label}: no single-type fleet (or no mixed fleet) exists")
        continue
    best = part.loc[part["cost_usd_per_hour"].idxmin()]
    print(
        f"{label}: best single type {best['instance_type']} ({best['composition']}) {best['cost_usd_per_hour']:.2f} USD/h; "
        f"mixed {mixed_cost[label]:.2f} USD/h, {1 - mixed_cost[label] / best['cost_usd_per_hour']:.0%} cheaper"
    )
both, od, spot = mixed_cost["both markets"], mixed_cost["on-demand only"], mixed_cost["spot only"]
print(
    f"spot instead of on-demand: {1 - spot / od:.0%} cheaper; allowing both markets costs {both:.2f} USD/h "
    f"({'the same as spot only' if np.isclose(both, spot) else 'less than either market alone'})"
)

# %% [markdown]
# **Reading.** The two workloads want different hardware (their token lengths and SLOs differ), and the
# quotas cap how many instances of one family or region can be bought, so a single type must be sized for
# the harder workload and is bounded by its quota; the mixed fleet gives each workload its own best type
# and spreads across families and regions. The printout gives the saving of mixing per market and of spot
# over on-demand. Spot prices here are the median over the region's zones in the shipped catalog snapshot;
# spot capacity can be reclaimed, which this plan does not price in.
