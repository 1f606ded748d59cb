"""Write the example notebooks of ``notebooks/`` (stored without outputs; CI executes them).

The notebooks are generated from the cell sources below so that they stay small, reviewable and free of
outputs. Regenerate after editing this file::

    python notebooks/build_notebooks.py            # writes notebooks/*.ipynb
    python notebooks/build_notebooks.py --check    # exit 1 when a committed notebook differs

``tests/test_notebooks.py`` executes every notebook with nbclient and checks that each one draws a figure.
The notebooks use only the public API (``solver`` and its public modules) and the shipped data; every
statement about results in their markdown is either phrased as what to look at or computed and printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

Cell = tuple[str, str]  # ("md" | "py", source)


def md(text: str) -> Cell:
    """A markdown cell."""
    return ("md", dedent(text).strip("\n"))


def py(text: str) -> Cell:
    """A code cell."""
    return ("py", dedent(text).strip("\n"))


# ---------------------------------------------------------------------------------------------------------
# 01 quickstart
# ---------------------------------------------------------------------------------------------------------
QUICKSTART: list[Cell] = [
    md(
        """
        # 01 · Quickstart: plan the default scenario

        `solver.load_scenario()` without an argument returns the embedded default scenario (the one
        `infersave plan` solves): an online chat service and a nightly batch job on Llama 3.1 8B, on-demand
        instances in one region. `solver.planning.planner.plan` enumerates every (instance type, TP degree, batch size,
        KV offload fraction) configuration, predicts its memory and latency with the calibrated performance
        model, and solves a MILP for the cheapest fleet that meets every SLO and demand.
        """
    ),
    py(
        """
        %matplotlib inline
        import matplotlib.pyplot as plt
        import pandas as pd

        import solver
        from solver.planning.evaluate import evaluate
        from solver.planning.plan import FLEET_FIELDS
        from solver.planning.planner import plan

        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 30)
        """
    ),
    md("## The scenario"),
    py(
        """
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
        """
    ),
    md("## Plan the fleet"),
    py(
        """
        result = plan(scenario, solver.SolveOptions(time_limit_s=20))
        print(
            f"status {result.status} ({result.backend}, {result.solve_seconds:.2f} s, {result.candidates} candidates); "
            f"{result.cost_usd_per_hour:.2f} USD/h with everything running, "
            f"{result.total_cost_usd:.2f} USD over the {result.horizon_h:g} h horizon"
        )
        fleet = result.to_frame()
        fleet[list(FLEET_FIELDS)]
        """
    ),
    md(
        """
        Each row is `count` instances of one type serving one workload with one configuration: `tp` GPUs
        per model copy, a static batch of `batch_size` sequences and a share `offload_fraction` of the KV cache
        kept in host memory. `ttft_ms`/`tpot_ms` are the predicted latencies (they must sit below the
        workload's SLO) and `utilisation` the share of the rows' sustainable capacity that the demand uses.

        The evaluator re-checks the plan with the exact (non-linearised) model: memory, SLOs, demand,
        deadlines and limits.
        """
    ),
    py(
        """
        check = evaluate(result, scenario)
        print("exact re-check:", check)
        """
    ),
    md(
        """
        ## Where the money goes

        Online rows cost their hourly price times the horizon; offline rows cost the instance-hours they are
        billed for. Dividing by the tokens each workload generates gives its cost per million output tokens.
        """
    ),
    py(
        """
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
        """
    ),
    py(
        """
        total = spend.sum()
        for name, usd in spend.sort_values(ascending=False).items():
            rows = fleet[fleet["workload"] == name]
            types = ", ".join(f"{n}x {t}" for t, n in rows.groupby("instance_type")["count"].sum().items())
            print(
                f"{name}: {usd:.2f} USD ({usd / total:.0%} of the total) on {types}; "
                f"{per_mtok[name]:.3f} USD per million output tokens"
            )
        """
    ),
    md(
        """
        **Reading.** The printout ranks the workloads by spend and gives each one's unit cost. An online workload
        pays for its instances over the whole horizon, sized for its rate with headroom (`search.utilisation_cap`),
        while an offline job pays only for the instance-hours it needs to finish by its deadline. The unit cost
        is per generated token, so a workload with long prompts relative to its outputs also pays for their
        prefill in that figure. The instance types can differ between workloads because latency SLOs limit the
        batch size of an online workload, whereas a batch job is sized for throughput alone.
        """
    ),
]


# ---------------------------------------------------------------------------------------------------------
# 02 offload vs batch
# ---------------------------------------------------------------------------------------------------------
OFFLOAD: list[Cell] = [
    md(
        """
        # 02 · Offload versus batch size: InferSave's motivation figure, redone with our model

        InferSave (Kim et al., arXiv 2504.11816) motivates KV-cache offloading with one observation: on a small
        cloud GPU a larger batch raises throughput, but its KV cache soon outgrows GPU memory; offloading part of
        the cache to host memory admits a larger batch, at the cost of moving that part over PCIe at every decode
        step. Whether that trade pays depends on the GPU, the instance's price and its host memory.

        Here the vectorised performance model (`solver.performance.model.predict_frame`) evaluates the whole grid of
        batch size × offload fraction on the three single-GPU instances of the paper's comparison: g4dn.xlarge
        (T4), g6.xlarge (L4) and g5.xlarge (A10G). The workload is the paper's offline setting: OPT-2.7B in fp16,
        1,024 prompt and 128 generated tokens per sequence, the FlexGen engine profile and InferSave's offload
        mode (`copy`: offloaded KV streamed back every step). Prices are the shipped catalog's us-east-1
        on-demand prices.

        **Cost efficiency** is InferSave's: TPS (prompt plus generated tokens per second of the batch) per
        dollar-per-hour of the instance.
        """
    ),
    py(
        """
        %matplotlib inline
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd
        from IPython.display import display

        from solver import get_model, load_catalog
        from solver.performance.model import predict_frame

        pd.set_option("display.width", 160)
        """
    ),
    py(
        """
        MODEL = get_model("opt-2.7b")
        INPUT_TOKENS, OUTPUT_TOKENS = 1024, 128
        ENGINE = "flexgen"
        INSTANCES = ["g4dn.xlarge", "g6.xlarge", "g5.xlarge"]
        BATCH_SIZES = [1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128]
        OFFLOAD_FRACTIONS = np.round(np.linspace(0.0, 1.0, 21), 2)

        offers = load_catalog("aws").filter(regions=["us-east-1"], instances=INSTANCES).offers(["on_demand"])
        offers = offers.set_index("instance_type").loc[INSTANCES].reset_index()
        offers[["instance_type", "gpu", "gpu_memory_mib", "host_memory_gib", "usd_per_hour"]]
        """
    ),
    md("One call evaluates the whole grid (instances × batch sizes × offload fractions), one row per configuration."),
    py(
        """
        grid = (
            offers.merge(pd.DataFrame({"batch_size": BATCH_SIZES}), how="cross")
            .merge(pd.DataFrame({"offload_fraction": OFFLOAD_FRACTIONS}), how="cross")
            .assign(tp=1)
        )
        pred = predict_frame(grid, MODEL, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS, engine=ENGINE)
        pred["tps_per_usd"] = pred["tps"] / pred["usd_per_hour"]
        print(f"{len(pred)} configurations; {int(pred['fits'].sum())} fit both GPU and host memory")
        pred[
            [
                "instance_type",
                "batch_size",
                "offload_fraction",
                "fits",
                "total_gpu_gib",
                "available_gpu_gib",
                "offloaded_kv_gib",
                "host_available_gib",
                "ttft_ms",
                "tpot_ms",
                "tps",
                "tps_per_usd",
            ]
        ].head()
        """
    ),
    md(
        """
        ## Cost efficiency over batch size × offload fraction

        Grey cells with a cross do not fit: left of the fitting region the KV cache does not fit GPU memory, right
        of it (where present) the offloaded part does not fit the instance's host memory; rows grey throughout fit
        neither way. The star marks each instance's most cost-efficient configuration. All three panels share one
        colour scale.
        """
    ),
    py(
        """
        fitting = pred[pred["fits"]]
        vmin, vmax = fitting["tps_per_usd"].min(), fitting["tps_per_usd"].max()
        cmap = plt.get_cmap("viridis").copy()
        cmap.set_bad("0.85")

        fig, axes = plt.subplots(1, len(INSTANCES), figsize=(15, 4.6), sharey=True)
        for ax, itype in zip(axes, INSTANCES, strict=True):
            part = pred[pred["instance_type"] == itype]
            eff = part.pivot(index="batch_size", columns="offload_fraction", values="tps_per_usd")
            fits = part.pivot(index="batch_size", columns="offload_fraction", values="fits").astype(bool)
            image = ax.imshow(
                np.ma.masked_where(~fits.to_numpy(), eff.to_numpy()),
                origin="lower",
                aspect="auto",
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
            )
            rows, cols = np.nonzero(~fits.to_numpy())
            ax.scatter(cols, rows, marker="x", s=10, color="0.55", linewidths=0.7)
            if fits.to_numpy().any():
                best = part[part["fits"]].loc[part.loc[part["fits"], "tps_per_usd"].idxmax()]
                ax.scatter(
                    [list(eff.columns).index(best["offload_fraction"])],
                    [list(eff.index).index(best["batch_size"])],
                    marker="*",
                    s=220,
                    color="red",
                    edgecolors="white",
                )
            ax.set_xticks(range(0, len(eff.columns), 4), [f"{v:.1f}" for v in eff.columns[::4]])
            ax.set_yticks(range(len(eff.index)), [str(b) for b in eff.index])
            ax.set_xlabel("KV offload fraction")
            gpu = part["gpu"].iloc[0]
            price = part["usd_per_hour"].iloc[0]
            ax.set_title(f"{itype} ({gpu}, {price:.3f} USD/h)")
        axes[0].set_ylabel("batch size")
        fig.colorbar(image, ax=axes, label="TPS per USD/h", shrink=0.9)
        fig.suptitle(f"{MODEL.name}, {INPUT_TOKENS} in / {OUTPUT_TOKENS} out, engine {ENGINE}")
        plt.show()
        """
    ),
    md(
        """
        ## Offloading only as much as needed

        Along a row of a heatmap (one batch size) offloading more never helps: every offloaded byte crosses PCIe
        at each step. So the useful offload fraction for a batch is the smallest one that fits, which
        `predict_frame` chooses itself when `offload_fraction` is NaN. The solid lines keep the whole cache on
        the GPU; the dashed lines offload the minimum the batch needs.
        """
    ),
    py(
        """
        minimal = predict_frame(
            grid.drop_duplicates(["instance_type", "batch_size"]).assign(offload_fraction=np.nan),
            MODEL,
            input_tokens=INPUT_TOKENS,
            output_tokens=OUTPUT_TOKENS,
            engine=ENGINE,
        )
        minimal["tps_per_usd"] = minimal["tps"] / minimal["usd_per_hour"]

        fig, ax = plt.subplots(figsize=(8, 4.5))
        for i, itype in enumerate(INSTANCES):
            color = f"C{i}"
            none = pred[(pred["instance_type"] == itype) & (pred["offload_fraction"] == 0.0) & pred["fits"]]
            ax.plot(none["batch_size"], none["tps_per_usd"], marker="o", color=color, label=f"{itype}, no offload")
            some = minimal[(minimal["instance_type"] == itype) & minimal["fits"]]
            ax.plot(
                some["batch_size"],
                some["tps_per_usd"],
                ls="--",
                marker=".",
                color=color,
                label=f"{itype}, smallest offload that fits",
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(BATCH_SIZES, [str(b) for b in BATCH_SIZES])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel("TPS per USD/h")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("Cost efficiency with and without KV offloading")
        plt.show()
        """
    ),
    py(
        """
        summary = []
        for itype in INSTANCES:
            part = pred[(pred["instance_type"] == itype) & pred["fits"]]
            best = part.loc[part["tps_per_usd"].idxmax()]
            on_gpu = part[part["offload_fraction"] == 0.0]
            best0 = on_gpu.loc[on_gpu["tps_per_usd"].idxmax()] if not on_gpu.empty else None
            summary.append(
                {
                    "instance_type": itype,
                    "gpu": best["gpu"],
                    "largest_batch_no_offload": int(on_gpu["batch_size"].max()) if best0 is not None else 0,
                    "largest_batch_any_offload": int(part["batch_size"].max()),
                    "best_batch": int(best["batch_size"]),
                    "best_offload_fraction": float(best["offload_fraction"]),
                    "best_tps_per_usd": float(best["tps_per_usd"]),
                    "best_no_offload_tps_per_usd": float(best0["tps_per_usd"]) if best0 is not None else np.nan,
                }
            )
        summary = pd.DataFrame(summary).set_index("instance_type")
        display(summary.round(2))

        for itype, r in summary.iterrows():
            gain = r["best_tps_per_usd"] / r["best_no_offload_tps_per_usd"] - 1.0
            verdict = (
                f"offloading pays: +{gain:.0%} over the best configuration without offload"
                if r["best_offload_fraction"] > 0
                else "offloading does not pay: the best configuration keeps the whole KV cache on the GPU"
            )
            print(
                f"{itype} ({r['gpu']}): offload extends the batch from {r['largest_batch_no_offload']} "
                f"to {r['largest_batch_any_offload']}; {verdict}"
            )
        order = summary["best_tps_per_usd"].sort_values(ascending=False)
        print(
            f"most cost-efficient instance: {order.index[0]}, {order.iloc[0] / order.iloc[1] - 1:.0%} ahead of {order.index[1]}"
        )
        """
    ),
    md(
        """
        **Reading.** Look at three things. (1) Within a heatmap row the colour fades to the right: more offload
        is always slower, so the best cell of a row sits on the left edge of the fitting region. (2) Down the
        columns, cost efficiency rises with the batch until memory stops it; offloading shifts that limit to
        larger batches, and the dashed curves show whether the extra batch is worth the PCIe traffic. The
        printout answers this per instance, and the answer can differ between GPUs: a GPU with a slow host link
        relative to its compute gains less from offloading. (3) Across panels, the cheapest instance is not
        necessarily the most cost-efficient: compare the best cells (stars) on the common colour scale, and the
        last line of the printout. The paper reports that offloading pays for offline workloads on some
        instances; whether our calibrated model agrees for this setting is what the printout says.
        """
    ),
]


# ---------------------------------------------------------------------------------------------------------
# 03 cost vs SLO
# ---------------------------------------------------------------------------------------------------------
COST_SLO: list[Cell] = [
    md(
        """
        # 03 · Cost versus SLO: the frontier across instance types

        How much does a tighter latency target cost, and at which target does the cheapest instance type change?
        The chat workload of the default scenario (Llama 3.1 8B, 20 requests/s) is planned over a range of TTFT
        and TPOT targets with `solver.apps.sweep.sweep`, once with every instance type allowed (the planner may
        mix them) and once restricted to each of a few instance types in turn (one per GPU: the cheapest type
        with that GPU among the planner's candidates).
        """
    ),
    py(
        """
        %matplotlib inline
        import re

        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd

        import solver
        from solver.planning.planner import build_candidates
        from solver.apps.sweep import sweep

        pd.set_option("display.width", 160)
        pd.set_option("display.max_colwidth", 90)
        OPTIONS = solver.SolveOptions(time_limit_s=10)
        """
    ),
    py(
        """
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
        """
    ),
    md(
        """
        The sweeps: each TTFT target with the default TPOT, and each TPOT target with the default TTFT; every
        point is one MILP. Rows come back in grid order (the product of the value lists), so the instance type
        of a restricted point is read from its position.
        """
    ),
    py(
        """
        TTFT_MS = [150, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000]
        TPOT_MS = [10, 12, 15, 20, 30, 50, 100, 200]
        FIELD = {"ttft": "workloads.0.slo.ttft_ms", "tpot": "workloads.0.slo.tpot_ms"}
        VALUES = {"ttft": TTFT_MS, "tpot": TPOT_MS}


        def fleet_types(composition: object) -> str:
            \"\"\"Instance types of a sweep row's composition ('2x g5.xlarge (on_demand) + ...'), sorted.\"\"\"
            return " + ".join(sorted(set(re.findall(r"x (\\S+) \\(", str(composition))))) if isinstance(composition, str) else ""


        any_type, per_type = {}, {}
        for key, field in FIELD.items():
            any_type[key] = sweep(chat, {field: VALUES[key]}, OPTIONS, processes=1)
            res = sweep(chat, {"instances": [[t] for t in TYPES], field: VALUES[key]}, OPTIONS, processes=1)
            res["instance_type"] = np.repeat(TYPES, len(VALUES[key]))
            per_type[key] = res
            any_type[key]["types"] = any_type[key]["composition"].map(fleet_types)
        any_type["ttft"][[FIELD["ttft"], "status", "cost_usd_per_hour", "composition", "max_ttft_ms", "max_batch_size"]]
        """
    ),
    py(
        """
        any_type["tpot"][[FIELD["tpot"], "status", "cost_usd_per_hour", "composition", "max_tpot_ms", "max_batch_size"]]
        """
    ),
    md(
        """
        ## The frontier

        Thin lines: the cheapest fleet of a single instance type (a missing point: no fleet of that type meets
        the target). Thick black line: the planner's cheapest fleet when it may mix types. The lower envelope of
        the thin lines is the cheapest single type at each target; dotted vertical lines mark the targets at
        which that cheapest type changes (labelled with the type that takes over as the target tightens).
        """
    ),
    py(
        """
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
        """
    ),
    py(
        """
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
        """
    ),
    md(
        """
        **Reading.** The cost of a target is flat where it does not bind and climbs where it does; the printout
        lists the targets at which the cheapest single instance type changes. With a static batch, TTFT
        includes the prefill of the whole batch, so a tighter TTFT forces smaller batches and therefore more
        replicas; a tighter TPOT pushes towards GPUs with more memory bandwidth. Where the black line lies below
        every thin line, the planner's mix of types (or a type not in the restricted list) beats every single
        type shown; the last line per target says by how much.
        """
    ),
]


# ---------------------------------------------------------------------------------------------------------
# 04 calibration
# ---------------------------------------------------------------------------------------------------------
CALIBRATION: list[Cell] = [
    md(
        """
        # 04 · Calibration: predicted against measured, before and after CTCF

        The performance model is a roofline: compute, memory-bandwidth and PCIe times from datasheet numbers.
        Real engines are slower (kernel efficiency, scheduling, launch overheads), so InferSave corrects each
        phase with a Compute Time Calibration Function `CTCF(t) = alpha * t + beta`, fitted by least squares per
        GPU and serving engine. This notebook compares the raw model and the shipped CTCF profiles
        (`instances/calibration/*.yaml`) with every shipped measurement (`instances/measurements/*.csv`).
        """
    ),
    py(
        """
        %matplotlib inline
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd

        from solver.performance.accuracy import shipped_measurements, validate
        from solver.performance.ctcf import apply_ctcf, shipped_profile
        from solver.performance.measurements import model_measurements

        pd.set_option("display.width", 160)
        pd.set_option("display.max_columns", 20)
        """
    ),
    py(
        """
        measurements = shipped_measurements()
        overview = measurements.groupby(["dataset", "engine", "gpu"]).agg(
            rows=("batch", "size"),
            ttft=("ttft_ms", "count"),
            tpot=("tpot_ms", "count"),
            e2e=("e2e_s", "count"),
            batching=("batching", "first"),
        )
        overview
        """
    ),
    md(
        """
        `model_measurements` adds the raw model's `ttft_model_ms`, `tpot_model_ms` and `e2e_model_s` to every
        row (on the measured hardware, batching mode and token lengths). The calibrated prediction applies the
        shipped profile of the row's engine; `lookup` tells where each GPU's coefficients come from.
        """
    ),
    py(
        """
        modelled = model_measurements(measurements)
        pred = modelled.copy()
        coefficients = []
        for (engine, gpu), index in modelled.groupby(["engine", "gpu"]).groups.items():
            cal, source = shipped_profile(engine).lookup(gpu)
            rows = modelled.loc[index]
            ttft, tpot = apply_ctcf(shipped_profile(engine), rows["gpu"], rows["ttft_model_ms"], rows["tpot_model_ms"])
            pred.loc[index, "ttft_ctcf_ms"] = ttft
            pred.loc[index, "tpot_ctcf_ms"] = tpot
            coefficients.append(
                {
                    "engine": engine,
                    "gpu": gpu,
                    "alpha_prefill": cal.prefill.alpha,
                    "beta_prefill_ms": cal.prefill.beta_ms,
                    "alpha_decode": cal.decode.alpha,
                    "beta_decode_ms": cal.decode.beta_ms,
                    "shared_scale": cal.shared_scale,
                    "source": source,
                }
            )
        pred["e2e_ctcf_s"] = (pred["ttft_ctcf_ms"] + pred["output"] * pred["tpot_ctcf_ms"]) / 1000.0
        pd.DataFrame(coefficients).round(3)
        """
    ),
    py(
        """
        METRICS = {
            "TTFT (ms)": ("ttft_ms", "ttft_model_ms", "ttft_ctcf_ms"),
            "TPOT (ms)": ("tpot_ms", "tpot_model_ms", "tpot_ctcf_ms"),
            "end-to-end (s)": ("e2e_s", "e2e_model_s", "e2e_ctcf_s"),
        }
        long = pd.concat(
            [
                pd.DataFrame(
                    {
                        "metric": name,
                        "engine": pred["engine"],
                        "gpu": pred["gpu"],
                        "dataset": pred["dataset"],
                        "measured": pred[meas],
                        "before": pred[before],
                        "after": pred[after],
                    }
                )
                for name, (meas, before, after) in METRICS.items()
            ],
            ignore_index=True,
        ).dropna(subset=["measured"])
        long["group"] = long["gpu"] + " / " + long["engine"]
        for when in ("before", "after"):
            long[f"ape_{when}_pct"] = (long[when] - long["measured"]).abs() / long["measured"] * 100
        print(f"{len(long)} measured values in {long['group'].nunique()} (GPU, engine) groups")
        """
    ),
    md(
        """
        ## Predicted against measured

        Top row: the raw roofline; bottom row: after the shipped CTCF. Points on the diagonal are exact; the band
        is ±25 %. Colours are (GPU, engine) groups.
        """
    ),
    py(
        """
        groups = sorted(long["group"].unique())
        colors = {g: f"C{i % 10}" for i, g in enumerate(groups)}
        fig, axes = plt.subplots(2, len(METRICS), figsize=(15, 9))
        for col, name in enumerate(METRICS):
            sel = long[long["metric"] == name]
            lo = sel[["measured", "before", "after"]].min().min() * 0.7
            hi = sel[["measured", "before", "after"]].max().max() * 1.4
            for row, when in enumerate(("before", "after")):
                ax = axes[row, col]
                for g, part in sel.groupby("group"):
                    ax.scatter(part["measured"], part[when], s=9, alpha=0.6, color=colors[g], label=g)
                xs = np.geomspace(lo, hi, 50)
                ax.plot(xs, xs, color="black", lw=1)
                ax.fill_between(xs, xs * 0.75, xs * 1.25, color="0.5", alpha=0.12)
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlim(lo, hi)
                ax.set_ylim(lo, hi)
                ax.set_xlabel(f"measured {name}")
                ax.set_ylabel(f"predicted {name}")
                mape = sel[f"ape_{when}_pct"].mean()
                ax.set_title(f"{name}, {'raw model' if when == 'before' else 'after CTCF'}: MAPE {mape:.0f} %")
                ax.grid(alpha=0.3, which="both")
        handles = [plt.Line2D([], [], marker="o", ls="", color=colors[g], label=g) for g in groups]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(groups), 5), fontsize=8)
        fig.tight_layout(rect=(0, 0.06, 1, 1))
        plt.show()
        """
    ),
    md("## Error per GPU and engine"),
    py(
        """
        per_group = long.groupby(["metric", "group"]).agg(
            rows=("measured", "size"), mape_before_pct=("ape_before_pct", "mean"), mape_after_pct=("ape_after_pct", "mean")
        )
        fig, ax = plt.subplots(figsize=(9, 0.32 * len(per_group) + 1.5))
        labels = [f"{g} · {m}" for m, g in per_group.index]
        y = np.arange(len(per_group))
        ax.barh(y - 0.2, per_group["mape_before_pct"], height=0.4, color="0.65", label="raw model")
        ax.barh(y + 0.2, per_group["mape_after_pct"], height=0.4, color="tab:blue", label="after CTCF (shipped profile)")
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("mean absolute percentage error (%)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8)
        ax.set_title("In-sample error per (GPU, engine) and metric")
        fig.tight_layout()
        plt.show()
        per_group.round(1)
        """
    ),
    md(
        """
        The errors above are in-sample: the shipped profiles were fitted on these very rows. The honest estimate
        is leave-one-dataset-out (`solver.performance.accuracy.validate`): each dataset predicted by a profile fitted without
        it (the same numbers as `docs/accuracy.md`).
        """
    ),
    py(
        """
        report = validate()
        report[["dataset", "engine", "gpus", "metric", "rows", "mape_before_pct", "mape_in_sample_pct", "mape_lodo_pct"]]
        """
    ),
    py(
        """
        better = per_group[per_group["mape_after_pct"] < per_group["mape_before_pct"]]
        worse = per_group[per_group["mape_after_pct"] >= per_group["mape_before_pct"]]
        print(f"CTCF lowers the in-sample error in {len(better)} of {len(per_group)} (metric, GPU/engine) groups")
        for (metric, group), r in worse.iterrows():
            print(f"  not in {group} {metric}: {r['mape_before_pct']:.1f} % -> {r['mape_after_pct']:.1f} %")
        for metric, part in long.groupby("metric"):
            print(
                f"{metric}: MAPE {part['ape_before_pct'].mean():.1f} % raw -> {part['ape_after_pct'].mean():.1f} % after CTCF "
                f"({len(part)} values)"
            )
        lodo_worse = report[report["mape_lodo_pct"] > report["mape_before_pct"]]
        print(
            f"leave-one-dataset-out: CTCF beats the raw model on {len(report) - len(lodo_worse)} of {len(report)} (dataset, metric) rows"
        )
        for _, r in lodo_worse.iterrows():
            print(f"  not on {r['dataset']} {r['metric']}: {r['mape_before_pct']:.1f} % raw vs {r['mape_lodo_pct']:.1f} % LODO")
        """
    ),
    md(
        """
        **Reading.** A line in the scatter that is parallel to the diagonal but shifted is a pure scale error:
        exactly what `alpha` corrects; a bend at small values is a fixed overhead, which `beta` absorbs. Scatter
        that stays wide after CTCF is what one linear correction per GPU and engine cannot fix (for example a
        batching effect the roofline does not model). Judge the profile by the leave-one-dataset-out column,
        not by the in-sample bars: the printout lists where CTCF does not help out of sample. GPUs measured only
        end to end (the `shared_scale` column) get one scale for both phases, so their TTFT/TPOT split is the
        raw model's.
        """
    ),
]


# ---------------------------------------------------------------------------------------------------------
# 05 fleet mix
# ---------------------------------------------------------------------------------------------------------
FLEET_MIX: list[Cell] = [
    md(
        """
        # 05 · Fleet mix: a mixed fleet against the best single instance type, spot against on-demand

        The shipped scenario `instances/scenarios/mixed_spot.yaml` has two online workloads on different models
        (an assistant on Llama 3.1 8B and a summariser on Mistral 7B), two regions, on-demand and spot markets and
        per-family and per-region quotas. The planner may mix any instance types. How much does that mixing buy
        compared with the best fleet built from one instance type, and how much does the spot market save?
        """
    ),
    py(
        """
        %matplotlib inline
        import re

        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd

        import solver
        from solver.planning.plan import FLEET_FIELDS
        from solver.planning.planner import build_candidates, plan
        from solver.data.resources import data_path
        from solver.apps.sweep import sweep

        pd.set_option("display.width", 160)
        pd.set_option("display.max_colwidth", 100)
        OPTIONS = solver.SolveOptions(time_limit_s=10)
        SOLVED = ("optimal", "feasible")
        """
    ),
    py(
        """
        scenario = solver.load_scenario(data_path("scenarios", "mixed_spot.yaml"))
        print(f"regions {scenario.regions}, markets {scenario.markets}, spot price = {scenario.spot_price} over zones")
        print(f"limits: {scenario.limits.model_dump(exclude_defaults=True)}")
        for w in scenario.workloads:
            print(
                f"  {w.name}: {w.model}, {w.input_tokens} in / {w.output_tokens} out, {w.rate_rps:g} req/s, SLO {w.slo.model_dump(exclude_none=True)}"
            )
        """
    ),
    md("## The mixed fleet"),
    py(
        """
        mixed = plan(scenario, OPTIONS)
        print(f"{mixed.status}: {mixed.cost_usd_per_hour:.2f} USD/h")
        mixed.to_frame()[list(FLEET_FIELDS)]
        """
    ),
    md(
        """
        ## Each instance type alone, on each market

        Restrict `instances` to one type at a time (every type that has at least one candidate configuration)
        and `markets` to on-demand or spot: one sweep, one MILP per point. A type that cannot serve a workload
        within the SLOs, memory and quotas comes back with status `infeasible` and the reason. Rows come back in
        grid order, so each row's type and market are read from its position.
        """
    ),
    py(
        """
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
        """
    ),
    py(
        """
        by_market = sweep(scenario, {"markets": [["on_demand"], ["spot"], ["on_demand", "spot"]]}, OPTIONS, processes=1)
        by_market["label"] = ["on-demand only", "spot only", "both markets"]
        by_market[["label", "status", "cost_usd_per_hour", "composition"]]
        """
    ),
    py(
        """
        TOP = 10
        fig, axes = plt.subplots(1, 2, figsize=(14, 5))
        mixed_cost = by_market.set_index("label")["cost_usd_per_hour"]
        for ax, market, label in zip(axes, ("on_demand", "spot"), ("on-demand only", "spot only"), strict=True):
            part = solved_single[solved_single["market"] == market].nsmallest(TOP, "cost_usd_per_hour")
            ax.barh(part["instance_type"], part["cost_usd_per_hour"], color="tab:orange" if market == "spot" else "tab:blue")
            for y, (_, r) in enumerate(part.iterrows()):
                ax.annotate(
                    re.sub(r" \\(\\w+\\)", "", r["composition"]),
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
        """
    ),
    py(
        """
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
        """
    ),
    md(
        """
        **Reading.** The two workloads want different hardware (their token lengths and SLOs differ), and the
        quotas cap how many instances of one family or region can be bought, so a single type must be sized for
        the harder workload and is bounded by its quota; the mixed fleet gives each workload its own best type
        and spreads across families and regions. The printout gives the saving of mixing per market and of spot
        over on-demand. Spot prices here are the median over the region's zones in the shipped catalog snapshot;
        spot capacity can be reclaimed, which this plan does not price in.
        """
    ),
]


NOTEBOOKS: dict[str, list[Cell]] = {
    "01-quickstart": QUICKSTART,
    "02-offload-vs-batch": OFFLOAD,
    "03-cost-vs-slo": COST_SLO,
    "04-calibration": CALIBRATION,
    "05-fleet-mix": FLEET_MIX,
}


def build(cells: list[Cell]) -> nbformat.NotebookNode:
    """Return a notebook (no outputs, deterministic cell ids) made of ``cells``."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        cell = new_markdown_cell(source) if kind == "md" else new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) every notebook; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when a notebook differs")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(build(cells)) + "\n"
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)} (run python notebooks/build_notebooks.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
