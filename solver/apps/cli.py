"""The ``infersave`` command line. Thin: each command parses flags, calls one public function, prints.

Exit codes: 0 success, 2 bad input, 3 infeasible, 4 solver limit reached without a plan, 5 ``check`` found a
plan that breaks its scenario. Errors print one line on stderr (``error: FIELD: PROBLEM``), never a traceback.
``--json`` prints one JSON document, and only that, on stdout, whatever the exit code (an error object when the
command failed before printing its own). Tables are drawn by :mod:`solver.apps.render`; progress goes to
stderr. User text (names, paths, messages) is printed literally: never read as rich markup. Every ``--out`` is
checked before any work: an existing file is replaced only with ``--force``, and an input file never.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import pandas as pd
import typer
from rich.console import Console
from rich.text import Text

from solver.data.catalog import load_catalog
from solver.data.models import models_table
from solver.data.scenario import scenario_json_schema
from solver.errors import InfersaveError, InputError, SolverLimitError
from solver.validation import check_output_path, write_text_atomic

app = typer.Typer(
    name="infersave",
    help="Plan cost-efficient cloud GPU fleets for LLM inference (instance type, count, batch, KV offload, TP).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
out = Console()
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out = Console(width=200)
err = Console(stderr=True, soft_wrap=True)


def _show_version(value: bool) -> None:
    if value:
        from solver import __version__

        typer.echo(f"infersave {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_show_version),
    ] = False,
    gpus_file: Annotated[
        str | None,
        typer.Option(
            "--gpus-file",
            help="CSV of your GPU specs (the columns of instances/gpus.csv): adds or overrides GPUs for the command.",
        ),
    ] = None,
) -> None:
    """Plan cost-efficient cloud GPU fleets for LLM inference (instance type, count, batch, KV offload, TP)."""
    if gpus_file is not None:
        from solver.data.gpus import add_gpus, read_gpus_file

        add_gpus(read_gpus_file(gpus_file))


MODEL_HELP = (
    "A shipped model's name (llama-3.1-8b) or Hugging Face id (meta-llama/Llama-3.1-8B; see `infersave models`), "
    "or the path of a config.json or its folder (nothing is downloaded)."
)
"""Help of every --model option: exactly what get_model accepts."""

OPTION_FLAGS: dict[str, str] = {
    # SolveOptions fields
    "backend": "--backend",
    "time_limit_s": "--time-limit",
    "relative_gap": "--gap",
    "threads": "--threads",
    "tie_break": "--no-tie-break",
    # parameters of predict and recommend
    "model": "--model",
    "instance/gpu": "--instance/--gpu",
    "gpu": "--gpu",
    "gpus": "--gpus",
    "host_memory_gib": "--host-memory-gib",
    "batch_size": "--batch-size",
    "input_len": "--input-len",
    "output_len": "--output-len",
    "tp": "--tp",
    "ep": "--ep",
    "offload": "--offload",
    "batching": "--batching",
    "concurrency": "--concurrency",
    "rate_rps": "--rate",
    "arrivals": "--arrivals",
    "tps_slo": "--tps-slo",
    "policy": "--policy",
    "top_k": "--top-k",
    # parameters of sweep, calibrate and reproduce-paper
    "over": "--over",
    "max_points": "--max-points",
    "processes": "--processes",
    "executor": "--executor",
    "scheduler": "--scheduler",
    "out": "--out",
}
"""The flag that sets each library field or parameter: library errors name fields, the CLI shows its flags."""


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the console script: run the app and map library errors to exit codes.

    With ``--json``, stdout always holds one JSON document, whatever the exit code: the command's own, or an
    error object (:func:`error_payload`) when the command failed before printing one.
    """
    global _json_printed
    args = list(argv) if argv is not None else sys.argv[1:]
    json_mode = "--json" in args
    _json_printed = False
    tee = _Tee(sys.stderr) if json_mode else None
    try:
        if tee is not None:
            sys.stderr = tee
        try:
            app(args=args, prog_name="infersave")
        finally:
            if tee is not None:
                sys.stderr = tee.stream
    except InfersaveError as exc:
        err.print(Text.assemble(("error:", "bold red"), f" {_message(exc)}"), highlight=False)
        if json_mode and not _json_printed:
            print_json(error_payload(exc.exit_code, _message(exc), exc))
        sys.exit(exc.exit_code)
    except OSError as exc:  # stdout full or closed (plan --json > /dev/full), or a file the library did not wrap
        _silence_stdout()
        where = exc.filename or "stdout"
        err.print(Text.assemble(("error:", "bold red"), f" {where}: cannot write: {exc.strerror or exc}"))
        sys.exit(InputError.exit_code)
    except SystemExit as exc:  # a usage error (click printed it on stderr), or a command's own exit code
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if json_mode and code != 0 and not _json_printed and tee is not None:
            print_json(error_payload(code, tee.message() or "invalid command line"))
        raise


_json_printed = False
"""Whether this run printed a JSON document on stdout (then an error adds none)."""
JSON_STATUS = {2: "error", 3: "infeasible", 4: "no_solution", 5: "check_failed"}
"""The ``status`` of a ``--json`` error object by exit code."""


def error_payload(code: int, message: str, exc: Exception | None = None) -> dict[str, Any]:
    """Return the JSON object printed on stdout for a failed ``--json`` command: status, exit code and error."""
    error: dict[str, Any] = {"type": type(exc).__name__ if exc is not None else "UsageError", "message": message}
    if isinstance(exc, InputError):
        error |= {"field": OPTION_FLAGS.get(exc.field, exc.field), "problem": exc.problem}
    if isinstance(exc, SolverLimitError):
        error |= {"option": OPTION_FLAGS.get(exc.option, exc.option)}
    return {"status": JSON_STATUS.get(code, "error"), "exit_code": code, "error": error}


class _Tee:
    """A text stream that writes through to ``stream`` and keeps what was written (the usage error's text)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.seen: list[str] = []

    def write(self, text: str) -> int:
        self.seen.append(text)
        return int(self.stream.write(text) or 0)

    def message(self) -> str:
        """Return the text written, without box-drawing borders, as one line."""
        raw = "".join(self.seen)
        words = re.sub(r"[\u2500-\u257f]", " ", raw).split()
        return " ".join(words)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


def say(text: str, console: Console | None = None) -> None:
    """Print ``text`` literally (no markup, no highlighting) on ``console`` (stdout by default)."""
    (console or out).print(text, markup=False, highlight=False)


def _message(exc: InfersaveError) -> str:
    """Return the error's message, with SolveOptions field names replaced by the flags that set them."""
    if isinstance(exc, SolverLimitError):
        return f"{exc.reason}; to fix: raise {OPTION_FLAGS.get(exc.option, exc.option)}"
    if isinstance(exc, InputError) and exc.field in OPTION_FLAGS:
        return f"{OPTION_FLAGS[exc.field]}: {exc.problem}"
    return str(exc)


# ---- output helpers ---------------------------------------------------------------------------------
def print_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (NaN becomes null)."""
    global _json_printed
    typer.echo(json.dumps(_clean(payload), indent=2))
    _json_printed = True


def _gap(gap: float) -> str:
    """Format a relative gap for people: ``unknown`` when no bound was reported."""
    return f"{gap:.2g}" if math.isfinite(gap) else "unknown"


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def print_table(
    frame: pd.DataFrame,
    title: str | None = None,
    formats: Mapping[str, Callable[[Any], str]] | None = None,
) -> None:
    """Print a DataFrame as a rich table that folds to the width; ``formats`` maps a column to a cell formatter."""
    from solver.apps.render import frame_table

    out.print(frame_table(frame, title=title, formats=formats))


def _money(v: float) -> str:
    from solver.apps.render import money

    return money(v)


# ---- data commands ----------------------------------------------------------------------------------
@app.command()
def catalog(
    gpu: Annotated[list[str] | None, typer.Option("--gpu", help="Only instances with this GPU (repeatable).")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="Only this region (repeatable).")] = None,
    catalog_name: Annotated[
        str, typer.Option("--catalog", help="Shipped catalog name or a SkyPilot-schema CSV path.")
    ] = "aws",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List instance types with GPU, memory and on-demand and spot prices per region."""
    cat = load_catalog(catalog_name, field="--catalog").filter(
        gpus=gpu or None, regions=region or None, field_prefix=""
    )
    summary = cat.summary()
    if as_json:
        items = []
        for name, rows in summary.groupby("instance_type", sort=True):
            first = rows.iloc[0]
            items.append(
                {
                    "instance_type": name,
                    "family": first["family"],
                    "gpu": first["gpu"],
                    "gpu_count": first["gpu_count"],
                    "gpu_memory_mib": first["gpu_memory_mib"],
                    "gpu_memory_gib": first["gpu_memory_mib"] / 1024,
                    "vcpus": first["vcpus"],
                    "host_memory_gib": first["host_memory_gib"],
                    "arch": first["arch"],
                    "on_demand_usd_per_hour_min": rows["on_demand_usd_per_hour"].min(),
                    "spot_usd_per_hour_min": rows["spot_min_usd_per_hour"].min(),
                    "prices": [
                        {
                            "region": r["region"],
                            "on_demand_usd_per_hour": r["on_demand_usd_per_hour"],
                            "spot_min_usd_per_hour": r["spot_min_usd_per_hour"],
                            "spot_median_usd_per_hour": r["spot_median_usd_per_hour"],
                            "spot_zones": int(r["spot_zones"]),
                        }
                        for r in rows.to_dict("records")
                    ],
                }
            )
        print_json({"catalog": cat.name, "instance_types": items})
        return
    if region:
        shown = summary
    else:  # one line per type: its cheapest on-demand region
        idx = (
            summary.fillna({"on_demand_usd_per_hour": math.inf})
            .groupby("instance_type")["on_demand_usd_per_hour"]
            .idxmin()
        )
        shown = summary.loc[idx]
    shown = shown.assign(gpu_memory_gib=shown["gpu_memory_mib"] / 1024)[
        [
            "instance_type",
            "gpu",
            "gpu_count",
            "gpu_memory_gib",
            "vcpus",
            "host_memory_gib",
            "region",
            "on_demand_usd_per_hour",
            "spot_min_usd_per_hour",
            "spot_median_usd_per_hour",
        ]
    ]
    title = f"{cat.name}: {shown['instance_type'].nunique()} instance types"
    if not region:
        title += " (cheapest on-demand region of each; --region R for one region)"
    from solver.apps.render import natural_sort, price

    shown = natural_sort(shown, ["instance_type", "region"])
    money = {c: price for c in shown.columns if c.endswith("usd_per_hour")}
    print_table(shown, title=title, formats=money)


@app.command()
def models(
    config: Annotated[
        str | None,
        typer.Option("--config", help="A config.json (or its folder): show how it is read, with every assumption."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """List the model cards: total and active parameters, KV-cache bytes per token (or read one config.json)."""
    if config is not None:
        _show_config(config, as_json)
        return
    table = models_table()
    if as_json:
        print_json({"models": table.to_dict(orient="records")})
        return
    cols = [
        "name",
        "hf_id",
        "params_b",
        "params_b_published",
        "active_params_b",
        "params_active_b_published",
        "num_experts",
        "experts_per_token",
        "attention_type",
        "num_layers",
        "hidden_size",
        "num_attention_heads",
        "num_kv_heads",
        "default_dtype",
        "kv_bytes_per_token",
    ]
    print_table(table[cols], title="shipped models", formats={"kv_bytes_per_token": lambda v: f"{v:,.0f}"})


def _show_config(config: str, as_json: bool) -> None:
    """Print how a config.json was read: the card's sizes, parameter counts and assumptions."""
    from solver.apps.render import number, percent
    from solver.data.config_report import read_config_report

    report = read_config_report(config)
    if as_json:
        print_json(report.to_dict())
        return
    m = report.model
    rows = [
        ("family", m.family),
        ("layers", str(m.num_layers)),
        ("hidden size", f"{m.hidden_size:,}"),
        ("attention / KV heads", f"{m.num_attention_heads} / {m.num_kv_heads}"),
        ("head size", str(m.head_dim)),
        ("intermediate size", f"{m.intermediate_size:,}"),
        ("vocabulary", f"{m.vocab_size:,}"),
        ("context window", f"{m.max_position_embeddings:,}" if m.max_position_embeddings else "-"),
        ("served dtype", m.default_dtype),
        ("tied embeddings", str(m.tie_word_embeddings)),
        ("parameters (infersave)", f"{number(report.num_params / 1e9)} B ({report.num_params:,})"),
        ("KV cache per token", f"{m.kv_bytes_per_token():,.0f} bytes"),
    ]
    if report.config_params:
        diff = report.num_params / report.config_params - 1.0
        sign = "+" if diff >= 0 else "-"
        rows.append(
            (
                "parameters (checkpoint)",
                f"{number(report.config_params / 1e9)} B from {report.config_params_source}; infersave "
                f"{sign}{percent(abs(diff))}",
            )
        )
    else:
        rows.append(("parameters (checkpoint)", "not given (no parameter count or safetensors index in the folder)"))
    rows += [("assumption", a) for a in report.assumptions]
    print_table(pd.DataFrame(rows, columns=["quantity", "value"]), title=f"{report.path} read as {m.name}")


@app.command()
def schema() -> None:
    """Print the JSON schema of a scenario file."""
    typer.echo(scenario_json_schema())


# ---- performance-model commands (predict, calibrate, validate) -------------------------------------
@app.command()
def predict(
    model: Annotated[str, typer.Option("--model", help=MODEL_HELP)],
    input_len: Annotated[int, typer.Option("--input-len", help="Prompt tokens per sequence.")],
    output_len: Annotated[int, typer.Option("--output-len", help="Generated tokens per sequence.")],
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Sequences in the batch (static) or concurrency (continuous).")
    ] = None,
    instance: Annotated[str | None, typer.Option("--instance", help="Instance type of --catalog (g5.xlarge).")] = None,
    catalog_name: Annotated[
        str, typer.Option("--catalog", help="Shipped catalog name or a SkyPilot-schema CSV path.")
    ] = "aws",
    gpu: Annotated[
        str | None, typer.Option("--gpu", help="GPU name for a bare machine (instead of --instance).")
    ] = None,
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs of the bare machine (with --gpu).")] = 1,
    host_memory_gib: Annotated[
        float | None, typer.Option("--host-memory-gib", help="Host memory of the bare machine (with --gpu).")
    ] = None,
    offload: Annotated[
        float | None, typer.Option("--offload", help="KV offload fraction in [0,1]; default the smallest that fits.")
    ] = None,
    tp: Annotated[int | None, typer.Option("--tp", help="Tensor-parallel degree; default all GPUs.")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="fp16|bf16|fp8|int8|int4 (default: model's).")] = None,
    engine: Annotated[str, typer.Option("--engine", help="vllm, tgi, trtllm, flexgen or generic.")] = "vllm",
    offload_mode: Annotated[str, typer.Option("--offload-mode", help="copy (InferSave) or cpu_attention.")] = "copy",
    profile: Annotated[str | None, typer.Option("--profile", help="Calibration profile YAML.")] = None,
    batching: Annotated[
        str | None,
        typer.Option("--batching", help="static|continuous; default what the planner uses for the engine."),
    ] = None,
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", help="Closed-loop clients (continuous batching).")
    ] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Open-loop arrival rate per replica, requests/s (continuous).")
    ] = None,
    arrivals: Annotated[
        str | None,
        typer.Option(
            "--arrivals",
            help="With --concurrency: steady (default; requests spread in time), cohort (equal lengths, clients "
            "started together) or burst (one benchmark run of 10 x N requests started at once, what "
            "benchmark_serving.py --num-prompts 10N --max-concurrency N reports).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    ep: Annotated[
        int, typer.Option("--ep", help="Expert parallelism (MoE): 1, or the TP degree to spread whole experts.")
    ] = 1,
) -> None:
    """Predict latency, throughput and memory of one replica (static batch or continuous batching)."""
    from solver.data.models import get_model
    from solver.data.scenario import check_context_window
    from solver.performance.model import predict as predict_one

    check_context_window(get_model(model, field="--model"), input_len, output_len, "--input-len", "--output-len")
    result = predict_one(
        model,
        batch_size=batch_size,
        input_tokens=input_len,
        output_tokens=output_len,
        instance=instance,
        gpu=gpu,
        gpus=gpus,
        host_memory_gib=host_memory_gib,
        tp=tp,
        offload=offload,
        dtype=dtype,
        engine=engine,
        offload_mode=offload_mode,
        profile=profile,
        catalog=catalog_name,
        batching=batching,
        concurrency=concurrency,
        rate_rps=rate,
        arrivals=arrivals,
        ep=ep,
    )
    payload = result.to_dict()
    if as_json:
        print_json(payload)
        return
    rows = [(k, v) for k, v in payload.items() if not isinstance(v, dict | list)]
    rows += [(f"memory.{k}", v) for k, v in payload["memory"].items()]
    rows += [(f"calibration.{k}", v) for k, v in payload["calibration"].items()]
    bands = payload["bands"].items()
    rows += [(f"band.{k}", f"{b['p10']:,.4g} .. {b['p90']:,.4g} (80 %, {b['from']})") for k, b in bands]
    rows += [("assumption", a) for a in payload["assumptions"]]
    frame = pd.DataFrame(
        [(k, f"{v:,.4g}" if isinstance(v, float) else str(v)) for k, v in rows], columns=["quantity", "value"]
    )
    print_table(
        frame,
        title=f"{result.model} on {result.instance} (tp={result.tp}, {result.batching}, batch={result.batch_size})",
    )


@app.command()
def calibrate(
    measurements: Annotated[str, typer.Argument(metavar="MEASUREMENTS.csv", help="Measurement table (CSV).")],
    out_path: Annotated[str, typer.Option("--out", help="Write the profile YAML here.")],
    engine: Annotated[str | None, typer.Option("--engine", help="Engine recorded in the profile.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing --out file.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON on stdout.")] = False,
) -> None:
    """Fit CTCF (alpha, beta per GPU and phase) on a measurement CSV and write a profile YAML."""
    from solver.performance.calibration import calibrate as fit

    target = check_output_path(out_path, "--out", force=force, inputs=[measurements])
    prof = fit(measurements, engine=engine)
    path = write_text_atomic(target, prof.to_yaml())
    if as_json:
        print_json(prof.model_dump(mode="json") | {"written_to": str(path)})
        return
    rows = []
    for gpu_name, cal in prof.gpus.items():
        for metric, e in cal.errors.items():
            rows.append(
                {
                    "gpu": gpu_name,
                    "rows": cal.rows,
                    "rank": f"{cal.rank}/{cal.parameters}",
                    "prefill_alpha": cal.prefill.alpha,
                    "prefill_beta_ms": cal.prefill.beta_ms,
                    "decode_alpha": cal.decode.alpha,
                    "decode_beta_ms": cal.decode.beta_ms,
                    "metric": metric,
                    "mape_before_pct": e.mape_before_pct,
                    "mape_after_pct": e.mape_after_pct,
                    "worst_after_pct": e.worst_after_pct,
                }
            )
    fmt = {c: (lambda v: f"{v:.4g}") for c in ("prefill_alpha", "prefill_beta_ms", "decode_alpha", "decode_beta_ms")}
    print_table(pd.DataFrame(rows), title=f"CTCF profile {prof.name!r} ({prof.engine}) written to {path}", formats=fmt)


@app.command()
def validate(as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False) -> None:
    """Score the model on the shipped measurements: leave-one-source-out and leave-one-GPU-out MAPE per metric."""
    from solver.performance import validation_report as vr

    errors = vr.run()
    tables, head = vr.report(errors), vr.headline(errors)
    if as_json:
        print_json({"summary": head} | {k: t.to_dict(orient="records") for k, t in tables.items()})
        return
    for name, table in tables.items():
        print_table(table, title=f"accuracy on shipped measurements, {name.replace('_', ' ')} (MAPE, percent)")
    for metric, target in vr.TARGETS_PCT.items():
        met = "met" if head[f"{metric}_loso_target_met"] else "NOT met"
        say(f"{metric} leave-one-source-out MAPE {head.get(f'{metric}_loso_mape_pct')} % (target {target:g} %: {met})")


# ---- planning commands (plan) ------------------------------------------------------------------------
@app.command()
def plan(
    scenario_file: Annotated[
        str | None, typer.Argument(metavar="[SCENARIO.yaml]", help="Scenario file (default: the embedded one).")
    ] = None,
    backend: Annotated[str, typer.Option("--backend", help="ortools, cbc or auto.")] = "auto",
    time_limit: Annotated[float, typer.Option("--time-limit", help="Solver time limit in seconds.")] = 60.0,
    gap: Annotated[float, typer.Option("--gap", help="Relative optimality gap.")] = 1e-6,
    threads: Annotated[int | None, typer.Option("--threads", help="Solver threads.")] = None,
    tie_break: Annotated[
        bool, typer.Option("--tie-break/--no-tie-break", help="Re-solve for the canonical optimal plan.")
    ] = True,
    wide: Annotated[bool, typer.Option("--wide", help="Show every field of a fleet row, one column each.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display on stderr.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Binding constraint and runner-up of each row; on-demand price of spot.")
    ] = False,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help="Also the K cheapest plans with other types.")] = 0,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Simulate the plan; re-solve while an SLO is missed.")
    ] = True,
) -> None:
    """Plan the cheapest fleet meeting every workload's SLOs and demand (exit 3 infeasible, 4 no plan in time)."""
    from solver.data.scenario import load_scenario
    from solver.errors import InfeasibleError
    from solver.planning.diagnose import diagnose
    from solver.planning.planner import plan as make_plan

    scenario = load_scenario(scenario_file)
    options = solve_options(
        {
            "backend": backend,
            "time_limit_s": time_limit,
            "relative_gap": gap,
            "threads": threads,
            "tie_break": tie_break,
        }
    )
    from solver.apps.progress import enabled as progress_enabled
    from solver.apps.progress import solving

    try:
        with solving(err, f"planning {len(scenario.workloads)} workload(s)", progress_enabled(err, quiet)):
            result = make_plan(scenario, options, verify=verify)
    except InfeasibleError as exc:
        diagnosis = diagnose(scenario, options.model_copy(update={"tie_break": False}))
        if as_json:
            print_json({"status": "infeasible", "message": str(exc), "diagnosis": diagnosis.to_dict()})
            raise typer.Exit(InfeasibleError.exit_code) from None
        # the diagnosis says what to fix, with numbers: it replaces the error's own fixes
        raise InfeasibleError(f"no plan: {exc.reason}\n{diagnosis.summary()}", diagnosis=diagnosis) from None
    if explain or top_k:  # re-solves share the --time-limit
        from solver.planning.explain import explain as explain_plan

        result = explain_plan(result, scenario, options, rows=explain, top_k=top_k)
    if as_json:
        print_json(result.to_dict())
        return
    from solver.apps.render import print_plan

    print_plan(out, result, scenario, wide=wide)
    from solver.planning.explain import explanation_lines

    for line in explanation_lines(result.explanation):
        say(line)
    if result.verification:
        from solver.apps.simulate import verification_table

        table = verification_table(result)
        if not table.empty:
            print_table(table, title="simulated attainment (p50/p99 beside each SLO)")
        say(result.message)


CHECK_FAILED_EXIT = 5
"""Exit code of ``check`` when the plan breaks its scenario."""


@app.command()
def simulate(
    scenario_file: Annotated[str | None, typer.Argument(metavar="[SCENARIO.yaml]", help="Default: built-in.")] = None,
    plan_file: Annotated[str | None, typer.Option("--plan", help="A plan as `plan --json` writes it.")] = None,
    duration: Annotated[float | None, typer.Option("--duration", help="Seconds of arrivals (default 600).")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the arrivals.")] = 0,
    trace: Annotated[str | None, typer.Option("--trace", help="CSV arrival_s,input_tokens,output_tokens.")] = None,
    routing: Annotated[str, typer.Option("--routing", help="jsq or round_robin.")] = "jsq",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Simulate a plan's fleet (default: plan the scenario first) and report attainment against every SLO."""
    from solver.apps import simulate as sim

    result = sim.simulate_files(scenario_file, plan_file, duration_s=duration, seed=seed, trace=trace, routing=routing)
    if as_json:
        print_json(result.to_dict())
    else:
        sim.render(result, print_table, say)


@app.command()
def check(
    scenario_file: Annotated[str, typer.Argument(metavar="SCENARIO.yaml", help="The scenario the plan is for.")],
    plan_file: Annotated[str, typer.Argument(metavar="PLAN.json", help="A plan as `plan --json` writes it.")],
) -> None:
    """Re-check a saved plan with the exact evaluator: exit 0 when everything holds, else 5 listing what breaks."""
    from pathlib import Path

    from solver.data.scenario import load_scenario
    from solver.planning.classes import expand
    from solver.planning.evaluate import evaluate
    from solver.planning.plan import Plan

    scenario = load_scenario(scenario_file)
    try:
        payload = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(plan_file, f"cannot read: {exc.__class__.__name__}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(plan_file, f"not valid JSON ({str(exc)[:80]})") from None
    saved = Plan.from_dict(payload, field=plan_file)
    names = {w.name for w in scenario.workloads} | {w.name for w in expand(scenario).scenario.workloads}
    for i, row in enumerate(saved.fleet):
        if any(part not in names for part in row.workload.split("+")):  # a shared row names its workloads with +
            raise InputError(f"{plan_file}: fleet.{i}.workload", f"{row.workload!r} is not a workload of the scenario")
    result = evaluate(saved, scenario)
    if result.ok:
        out.print(f"ok: every check holds ({len(saved.fleet)} fleet rows)", markup=False, highlight=False)
        return
    for v in result.violations:
        err.print(f"broken: {v}", markup=False, highlight=False)
    raise typer.Exit(CHECK_FAILED_EXIT)


@app.command()
def export(
    plan_file: Annotated[str, typer.Argument(metavar="PLAN.json", help="A plan as `plan --json` writes it.")],
    to: Annotated[str, typer.Option("--to", help="skypilot (SkyServe YAML) or k8s (Deployment + Service).")],
    out_dir: Annotated[str, typer.Option("--out", help="Folder for the files, one per fleet row (created).")],
    scenario_file: Annotated[
        str | None, typer.Option("--scenario", help="The plan's scenario: model, dtype, lengths (default: embedded).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace existing files in --out.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the written paths as JSON on stdout.")] = False,
) -> None:
    """Write deployment files for a saved plan: a SkyServe service or a k8s Deployment+Service per fleet row."""
    from solver.apps.export import export_plan
    from solver.data.scenario import load_scenario

    scenario = load_scenario(scenario_file)
    saved = _read_plan(plan_file)
    paths = export_plan(saved, scenario, to, out_dir, force=force, field=plan_file)
    if as_json:
        print_json({"target": to, "files": [str(p) for p in paths]})
        return
    for p in paths:
        say(f"wrote {p}")


def _read_plan(plan_file: str) -> Any:
    """Read a ``plan --json`` file into a Plan (errors name the file)."""
    from pathlib import Path

    from solver.planning.plan import Plan

    try:
        payload = json.loads(Path(plan_file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(plan_file, f"cannot read: {exc.__class__.__name__}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(plan_file, f"not valid JSON ({str(exc)[:80]})") from None
    return Plan.from_dict(payload, field=plan_file)


@app.command()
def recommend(
    scenario_file: Annotated[
        str | None, typer.Option("--scenario", help="Scenario file with one workload and one batch size.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help=MODEL_HELP)] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Batch size.")] = None,
    input_len: Annotated[int | None, typer.Option("--input-len", help="Input tokens per request.")] = None,
    output_len: Annotated[int | None, typer.Option("--output-len", help="Output tokens per request.")] = None,
    tps_slo: Annotated[float | None, typer.Option("--tps-slo", help="TPS target: batch·(in+out)/e2e.")] = None,
    max_price: Annotated[float | None, typer.Option("--max-price", help="P_max in $/h.")] = None,
    instances: Annotated[str | None, typer.Option("--instances", help="Comma-separated instance types.")] = None,
    catalog_name: Annotated[str | None, typer.Option("--catalog", help="Catalog name or CSV path.")] = None,
    region: Annotated[list[str] | None, typer.Option("--region", help="Region (repeatable).")] = None,
    market: Annotated[str | None, typer.Option("--market", help="on_demand or spot.")] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="vllm, tgi, trtllm, flexgen or generic.")] = None,
    requests: Annotated[int | None, typer.Option("--requests", help="Requests in the task (default 1 batch).")] = None,
    billing: Annotated[str | None, typer.Option("--billing", help="per_hour (default) or per_second.")] = None,
    policy: Annotated[
        str, typer.Option("--policy", help="milp (our planner, 1 instance), infersave, max-performance or no-offload.")
    ] = "milp",
    top_k: Annotated[int | None, typer.Option("--top-k", help="Show at most this many choices.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Recommend the single instance meeting a TPS SLO at the best cost efficiency (InferSave); exit 3 if none."""
    from solver.apps.recommend import get_policy, recommend_scenario
    from solver.apps.recommend import recommend as make_recommendation
    from solver.data.scenario import load_scenario
    from solver.errors import InfeasibleError

    get_policy(policy)
    base = load_scenario(scenario_file) if scenario_file is not None else None
    values = {
        "model": model,
        "batch_size": batch_size,
        "input_len": input_len,
        "output_len": output_len,
        "tps_slo": tps_slo,
        "max_price": max_price,
        "instances": [s.strip() for s in instances.split(",") if s.strip()] if instances is not None else None,
        "catalog": catalog_name,
        "region": region or None,
        "market": market,
        "engine": engine,
        "requests": requests,
        "billing": billing,
    }
    rec = make_recommendation(recommend_scenario(base, values), policy, top_k=top_k)
    if as_json:
        print_json(rec.to_dict())
    else:
        slo = f"{rec.tps_slo:g} TPS" if rec.tps_slo is not None else "no TPS SLO"
        say(
            f"{rec.model}, batch {rec.batch_size}, {rec.input_tokens} in / {rec.output_tokens} out, {slo}, "
            f"{rec.requests:,} requests, billed {rec.billing.replace('_', ' ')}; policy {rec.policy}"
        )
        if rec.choices:
            from solver.apps.render import recommend_table

            out.print(recommend_table(rec))
        for line in rec.tradeoffs():
            say(f"  trade-off {line}")
        for r in rec.rejected:
            say(f"  rejected {r.instance_type}: {r.reason}")
    if not rec.choices:
        raise InfeasibleError(f"no instance qualifies under policy {rec.policy} (reasons above)")


@app.command("reproduce-paper")
def reproduce_paper(
    out_path: Annotated[str, typer.Option("--out", help="Where to write the report.")] = "docs/reproduction.md",
    check: Annotated[
        bool, typer.Option("--check", help="Do not write; exit 1 if the file differs from a fresh report.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing --out file that is not a previous report.")
    ] = False,
) -> None:
    """Answer the InferSave paper's scenarios (instances/paper) with every policy and write the report."""
    from pathlib import Path

    from solver.apps.reproduction import is_report, paper_scenarios, render_report, reproduce, write_report

    if check and force:
        raise InputError("--force", "--check never writes; drop --force")
    if check:
        scs = paper_scenarios()
        fresh = render_report(reproduce(scs), scs)
        path = Path(out_path)
        current = path.read_text(encoding="utf-8") if path.is_file() else ""
        if current != fresh:
            say(f"{out_path} is out of date; regenerate with: infersave reproduce-paper --out {out_path}", err)
            raise typer.Exit(1)
        say(f"{out_path} is up to date")
        return
    target = check_output_path(out_path, "--out", force=force, replaceable=is_report)
    path, _ = write_report(target)
    say(f"wrote {path}")


# ---- exploration commands (sweep) ---------------------------------------------------------------------
@app.command()
def sweep(
    scenario_file: Annotated[str, typer.Argument(metavar="SCENARIO.yaml", help="Base scenario file.")],
    over: Annotated[
        list[str],
        typer.Option(
            "--over",
            help="FIELD=V1,V2,... with FIELD a dotted path into the scenario (workloads.0.slo.tpot_ms=50,100). "
            "Repeat for a grid.",
        ),
    ],
    out_csv: Annotated[str, typer.Option("--out", help="Write the results table to this CSV file.")],
    plot: Annotated[str | None, typer.Option("--plot", help="Also plot cost against the first field (PNG).")] = None,
    backend: Annotated[str, typer.Option("--backend", help="ortools, cbc or auto.")] = "auto",
    time_limit: Annotated[float, typer.Option("--time-limit", help="Seconds per point.")] = 60.0,
    gap: Annotated[float, typer.Option("--gap", help="Relative optimality gap.")] = 1e-6,
    processes: Annotated[
        int | None, typer.Option("--processes", help="Worker processes (default and cap: min(points, CPUs)).")
    ] = None,
    tie_break: Annotated[
        bool, typer.Option("--tie-break/--no-tie-break", help="Re-solve each point for the canonical optimal plan.")
    ] = True,
    force: Annotated[bool, typer.Option("--force", help="Replace existing --out and --plot files.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Keep the points already in the --out CSV and solve the rest.")
    ] = False,
    max_points: Annotated[
        int, typer.Option("--max-points", help="Refuse a larger grid before any work (default 10,000).")
    ] = 10_000,
    executor: Annotated[
        str, typer.Option("--executor", help="processes (local, default) or dask (the [dask] extra).")
    ] = "processes",
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Dask scheduler address (tcp://host:8786); default a local cluster."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display on stderr.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON on stdout.")] = False,
) -> None:
    """Plan a scenario over a grid of field values; write a CSV as points finish (and a PNG)."""
    from pathlib import Path

    from solver.apps import sweep as sweep_mod
    from solver.apps.progress import SweepProgress
    from solver.apps.progress import enabled as progress_enabled
    from solver.data.scenario import load_scenario

    if force and resume:
        raise InputError("--resume", "give --resume (continue the CSV) or --force (start over), not both")
    if max_points < 1:
        raise InputError("--max-points", f"must be at least 1, got {max_points}")
    grid = sweep_mod.parse_grid(over)
    total = sweep_mod.grid_size(grid, max_points)
    base = load_scenario(scenario_file)
    options = solve_options(
        {"backend": backend, "time_limit_s": time_limit, "relative_gap": gap, "tie_break": tie_break}
    )
    inputs = [scenario_file, base.catalog, base.profile, *(w.model for w in base.workloads)]
    csv_path = check_output_path(out_csv, "--out", force=force or resume, inputs=inputs)
    if plot:
        if Path(plot).expanduser().resolve() == csv_path.resolve():
            raise InputError("--plot", "must be another file than --out")
        check_output_path(plot, "--plot", force=force, inputs=inputs)
    with SweepProgress(err, total, progress_enabled(err, quiet)) as bar:
        frame = sweep_mod.sweep(
            base,
            grid,
            options,
            processes=processes,
            progress=bar.done,
            on_point=bar.point,
            out_csv=csv_path,
            resume=resume,
            max_points=max_points,
            executor=executor,
            scheduler=scheduler,
        )
    if plot:
        try:
            sweep_mod.plot_sweep(frame, grid, plot)
        except OSError as exc:
            raise InputError("--plot", f"cannot write {plot!r}: {exc.strerror or exc}") from None
    if as_json:
        print_json({"points": frame.to_dict(orient="records")})
        return
    from solver.apps.render import sweep_table

    out.print(sweep_table(frame, grid, out_csv))


# ---- option helpers ---------------------------------------------------------------------------------
def solve_options(values: Mapping[str, Any]) -> Any:
    """Validate solver flags into :class:`~solver.specs.SolveOptions` (errors name the field; main shows its flag)."""
    from solver.specs import SolveOptions
    from solver.validation import validate

    return validate(SolveOptions, dict(values))


if __name__ == "__main__":  # pragma: no cover
    main()
