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
# # 03 · Cost versus SLO: the frontier across instance types
#
# How much does a tighter latency target cost, and at which target does the cheapest instance type change?
# The chat workload of the default scenario (Llama 3.1 8B, 20 requests/s) is planned over a range of TTFT
# and TPOT targets with `solver.sweep`, once with every instance type allowed (the planner may
# mix them) and once restricted to each of a few instance types in turn (one per GPU: the cheapest type
# with that GPU among the planner's candidates).

# %%
# %matplotlib inline
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import solver
from solver import build_candidates, sweep

pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 90)
OPTIONS = solver.SolveOptions(time_limit_s=10)

# %%
default = solver.load_scenario()
data = default.model_dump(mode="json", exclude_none=True)
chat = solver.scenario_from_dict({**data, "workloads": [w for w in data["workloads"] if w["name"] == "chat"]})
slo = chat.workloads[0].slo
print(
    f"chat: {chat.workloads[0].model}, {chat.workloads[0].rate_rps:g} req/s, default SLO TTFT {slo.ttft_ms:g} ms, TPOT {slo.tpot_ms:g} ms"
)

cands = build_candidates(chat)
per_gpu = cands.sort_values(["usd_per_hour", "instance_type"]).drop_duplicates("gpu")
TYPES = list(per_gpu.sort_values("usd_per_hour")["instance_type"])
per_gpu.sort_values("usd_per_hour")[["gpu", "instance_type", "gpu_count", "usd_per_hour"]]

# %% [markdown]
# The sweeps: each TTFT target with the default TPOT, and each TPOT target with the default TTFT; every
# point is one MILP. Rows come back in grid order (the product of the value lists), so the instance type
# of a restricted point is read from its position.

# %%
TTFT_MS = [150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000]
TPOT_MS = [10, 12, 15, 20, 30, 50, 100, 200]
FIELD = {"ttft": "workloads.0.slo.ttft_ms", "tpot": "workloads.0.slo.tpot_ms"}
VALUES = {"ttft": TTFT_MS, "tpot": TPOT_MS}


def fleet_types(composition: object) -> str:
    """Instance types of a sweep row's composition ('2x g5.xlarge (on_demand) + ...'), sorted."""
    return " + ".join(sorted(set(re.findall(r"x (\S+) \(", str(composition))))) if isinstance(composition, str) else ""


any_type, per_type = {}, {}
for key, field in FIELD.items():
    any_type[key] = sweep(chat, {field: VALUES[key]}, OPTIONS, processes=1)
    res = sweep(chat, {"instances": [[t] for t in TYPES], field: VALUES[key]}, OPTIONS, processes=1)
    res["instance_type"] = np.repeat(TYPES, len(VALUES[key]))
    per_type[key] = res
    any_type[key]["types"] = any_type[key]["composition"].map(fleet_types)
any_type["ttft"][[FIELD["ttft"], "status", "cost_usd_per_hour", "composition", "max_ttft_ms", "max_batch_size"]]

# %%
any_type["tpot"][[FIELD["tpot"], "status", "cost_usd_per_hour", "composition", "max_tpot_ms", "max_batch_size"]]

# %% [markdown]
# ## The frontier
#
# Thin lines: the cheapest fleet of a single instance type (a missing point: no fleet of that type meets
# the target). Thick black line: the planner's cheapest fleet when it may mix types. The lower envelope of
# the thin lines is the cheapest single type at each target; dotted vertical lines mark the targets at
# which that cheapest type changes (labelled with the type that takes over as the target tightens).

# %%
SOLVED = ("optimal", "feasible")
frontier = {}
for key, field in FIELD.items():
    ok = per_type[key][per_type[key]["status"].isin(SOLVED)]
    table = ok.pivot(index=field, columns="instance_type", values="cost_usd_per_hour").dropna(how="all")
    mixed = any_type[key].set_index(field)
    frontier[key] = pd.DataFrame(
        {
            "cheapest_type": table.idxmin(axis=1),
            "cheapest_type_usd_per_hour": table.min(axis=1),
            "planner_usd_per_hour": mixed["cost_usd_per_hour"],
            "planner_fleet": mixed["composition"],
        }
    ).rename_axis(field)

colors = {t: plt.get_cmap("tab20")(i % 20) for i, t in enumerate(TYPES)}
fig, axes = plt.subplots(1, 2, figsize=(15, 5.5))
for ax, key, label in zip(axes, ("ttft", "tpot"), ("TTFT SLO (ms)", "TPOT SLO (ms)"), strict=True):
    field = FIELD[key]
    for itype in TYPES:
        part = per_type[key][(per_type[key]["instance_type"] == itype) & per_type[key]["status"].isin(SOLVED)]
        if not part.empty:
            ax.plot(
                part[field], part["cost_usd_per_hour"], marker=".", lw=1, color=colors[itype], label=itype, zorder=3
            )
    best = any_type[key][any_type[key]["status"].isin(SOLVED)]
    ax.plot(best[field], best["cost_usd_per_hour"], color="black", lw=3, marker="o", label="planner (mixed)", zorder=2)
    cheapest = frontier[key]["cheapest_type"].dropna()
    for i in range(len(cheapest) - 1):
        slo_ms, tighter, looser = cheapest.index[i], cheapest.iloc[i], cheapest.iloc[i + 1]
        if looser != tighter:
            ax.axvline(slo_ms, color="0.3", ls=":", lw=1.2)
            ax.text(
                slo_ms,
                0.98,
                f" {tighter}",
                transform=ax.get_xaxis_transform(),
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
                color=colors[tighter],
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(VALUES[key], [f"{v:g}" for v in VALUES[key]])
    ax.minorticks_off()
    ax.set_xlabel(label)
    ax.set_ylabel("fleet cost (USD/h)")
    ax.grid(alpha=0.3)
axes[0].set_title("Cost vs TTFT target (TPOT at its default)")
axes[1].set_title("Cost vs TPOT target (TTFT at its default)")
axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
fig.tight_layout()
plt.show()

# %%
for key, unit in (("ttft", "TTFT"), ("tpot", "TPOT")):
    table = frontier[key]
    missing = [v for v in VALUES[key] if v not in table.index or not np.isfinite(table.loc[v, "planner_usd_per_hour"])]
    if missing:
        print(f"{unit}: no fleet at all for targets {missing} ms")
    prev = None
    for slo_ms, row in table.iloc[::-1].iterrows():
        if row["cheapest_type"] != prev:
            print(
                f"{unit} <= {slo_ms:g} ms: cheapest single type {row['cheapest_type']} "
                f"({row['cheapest_type_usd_per_hour']:.2f} USD/h)"
            )
        prev = row["cheapest_type"]
    solved = table["planner_usd_per_hour"].dropna()
    if len(solved) > 1:
        print(f"  tightest vs loosest target: {solved.iloc[0] / solved.iloc[-1]:.1f}x the cost")
    saving = (1 - table["planner_usd_per_hour"] / table["cheapest_type_usd_per_hour"]).dropna()
    if saving.max() > 1e-6:
        print(
            f"  mixing saves up to {saving.max():.0%} over the cheapest single type (at {unit} {saving.idxmax():g} ms)"
        )
    else:
        print("  mixing never beats the cheapest single type here")

# %% [markdown]
# **Reading.** The cost of a target is flat where it does not bind and climbs where it does; the printout
# lists the targets at which the cheapest single instance type changes. With a static batch, TTFT
# includes the prefill of the whole batch, so a tighter TTFT forces smaller batches and therefore more
# replicas; a tighter TPOT pushes towards GPUs with more memory bandwidth. Where the black line lies below
# every thin line, the planner's mix of types (or a type not in the restricted list) beats every single
# type shown; the last line per target says by how much.
