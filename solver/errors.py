"""Typed exceptions shared by the library and the CLI.

Every exception carries a one-line, user-facing message that names the field and the problem. The CLI
maps each class to an exit code (``exit_code``) and prints the message without a traceback.

Exit codes: 0 success, 2 bad input, 3 infeasible (no plan exists), 4 solver limit reached with no plan.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence


class InfersaveError(Exception):
    """Base class of every error infersave raises on purpose."""

    exit_code: int = 1


class InputError(InfersaveError, ValueError):
    """Bad user input: a malformed file, a wrong type, an unknown name, an empty selection.

    Parameters
    ----------
    field
        Dotted path of the offending field (``workloads.0.slo.tpot_ms``), or a short noun (``--gpu``).
    problem
        What is wrong with it, in plain words.
    """

    exit_code = 2

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}" if field else problem)


class UnknownNameError(InputError):
    """A name (model, instance, GPU, region, engine, ...) that is not known, with close matches."""

    def __init__(self, field: str, kind: str, name: str, known: Iterable[str]) -> None:
        known_list = sorted(set(known))
        self.name = name
        self.suggestions = suggest(name, known_list)
        if self.suggestions:
            hint = "did you mean " + " or ".join(repr(s) for s in self.suggestions) + "?"
        else:
            shown = ", ".join(known_list[:12]) + (", ..." if len(known_list) > 12 else "")
            hint = f"known {kind}s: {shown}" if known_list else f"no {kind}s are available"
        super().__init__(field, f"unknown {kind} {name!r}; {hint}")


class InfeasibleError(InfersaveError):
    """No plan satisfies the constraints.

    Parameters
    ----------
    reason
        What blocks, in one sentence (``workload 'rag': all 108 candidate configurations were removed ...``).
    fixes
        What would help, each naming a scenario field; the message is ``reason; to fix: fix1; fix2``.
    diagnosis
        The facts behind the reason as data (removal counts per rule, the limits set), when known.
    """

    exit_code = 3

    def __init__(self, reason: str, fixes: Sequence[str] = (), diagnosis: object | None = None) -> None:
        self.reason = reason
        self.fixes = tuple(fixes)
        self.diagnosis = diagnosis
        super().__init__(f"{reason}; to fix: {'; '.join(self.fixes)}" if self.fixes else reason)


class SolverLimitError(InfersaveError):
    """The solver stopped at a limit (time, nodes) before finding any plan.

    ``reason`` says what happened; ``option`` names the :class:`~solver.specs.SolveOptions` field to raise
    (the CLI shows its flag instead). The message is ``reason; to fix: raise option``.
    """

    exit_code = 4

    def __init__(self, reason: str, option: str = "time_limit_s") -> None:
        self.reason = reason
        self.option = option
        super().__init__(f"{reason}; to fix: raise {option}")


class SolverError(InfersaveError):
    """The solver failed for a reason other than the model (missing binary, crash)."""

    exit_code = 1


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Return up to ``n`` known names close to ``name`` (case-insensitive), best first."""
    known_list = list(known)
    lower = {k.lower(): k for k in known_list}
    hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.6)
    if not hits:
        hits = [k for k in lower if name.lower() in k or k in name.lower()][:n]
    return [lower[h] for h in hits]
