"""Check user input at the edge: pydantic errors, YAML text and output paths, each as a one-line InputError.

Every failure becomes an :class:`~solver.errors.InputError` naming the field: a pydantic validation error, YAML
that is malformed, has a duplicate key or is nested absurdly deep, and an output path whose writing would lose a
user's file (an existing file without ``--force``, an input file ever).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import pydantic
import yaml

from solver.errors import InputError, suggest

MAX_YAML_DEPTH = 100
"""Deepest nesting of mappings and lists accepted in a YAML file (a scenario needs 5; PyYAML's composer recurses
per level, so 50,000 levels would end in a RecursionError)."""

M = TypeVar("M", bound=pydantic.BaseModel)


def first_error(exc: pydantic.ValidationError) -> tuple[str, str]:
    """Return ``(dotted field path, message)`` of the first error in ``exc``."""
    err = exc.errors(include_url=False)[0]
    parts = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
    loc = ".".join(str(p) if str(p).isprintable() else repr(p) for p in parts)  # a key "\n" stays on one line
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "missing":
        msg = "required field is missing"
    given = err.get("input")
    if err["type"] not in ("missing", "extra_forbidden", "value_error") and _short(given):
        msg = f"{msg} (got {given!r})"
    return loc, msg


def _short(value: Any) -> bool:
    return isinstance(value, int | float | str | bool) and len(repr(value)) <= 60


def validate(model: type[M], data: Any, prefix: str = "") -> M:
    """Validate ``data`` into ``model``; raise :class:`InputError` with one line on failure.

    Unknown keys get a "did you mean" hint drawn from the model's field names.
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        loc, msg = first_error(exc)
        err = exc.errors(include_url=False)[0]
        if err["type"] == "extra_forbidden":
            owner = _owner(model, err["loc"][:-1])
            if owner is not None:
                hints = suggest(str(err["loc"][-1]), owner.model_fields)
                if hints:
                    msg = f"unknown field; did you mean {hints[0]!r}?"
        field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        raise InputError(field, msg) from None


def _owner(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> type[pydantic.BaseModel] | None:
    """Walk ``loc`` through nested pydantic models to find the model that owns the last key."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return None
        ann = fields[part].annotation
        current = _inner_model(ann)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, pydantic.BaseModel) else None


def _inner_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, pydantic.BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


# ---- YAML -------------------------------------------------------------------------------------------
class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (nothing is evaluated) that refuses duplicate mapping keys and deep nesting."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: D102
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels of mappings or lists", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:  # noqa: D102
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base constructor reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str, field: str) -> Any:
    """Parse YAML text safely; duplicate keys and nesting deeper than :data:`MAX_YAML_DEPTH` are errors.

    Parameters
    ----------
    text
        The YAML (or JSON) text.
    field
        Name of the input in error messages (a file name, ``--over FIELD``).

    Raises
    ------
    InputError
        ``FIELD: not valid YAML at line L, column C: PROBLEM``.
    """
    try:
        return yaml.load(text, Loader=StrictSafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InputError(field, f"not valid YAML{where}: {problem}") from None
    except RecursionError:
        raise InputError(field, f"not valid YAML: nested deeper than {MAX_YAML_DEPTH} levels") from None


# ---- output files -----------------------------------------------------------------------------------
def check_output_path(
    path: str | Path,
    field: str,
    *,
    force: bool = False,
    inputs: Iterable[str | Path | None] = (),
    replaceable: Callable[[Path], bool] | None = None,
) -> Path:
    """Check, before any work, that writing ``path`` loses no user file; return it.

    Parameters
    ----------
    path
        The output file.
    field
        The flag in error messages (``--out``).
    force
        Allow replacing an existing file that is not an input.
    inputs
        Files this command reads (scenario, measurements); never replaced, even with ``force``.
    replaceable
        Says whether an existing file may be replaced without ``force`` (a report this command generated).

    Raises
    ------
    InputError
        The path is a folder, its folder is missing or not writable, it is an input, or it exists and
        neither ``force`` nor ``replaceable`` allows replacing it.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(field, f"{str(p)!r} is a folder, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(field, f"the folder {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(field, f"the folder {str(parent)!r} is not writable")
    if p.exists():
        for given in inputs:
            if (
                given is not None
                and Path(given).expanduser().exists()
                and os.path.samefile(p, Path(given).expanduser())
            ):
                raise InputError(field, f"{str(p)!r} is an input of this command; refusing to replace it")
        if not force and not (replaceable is not None and replaceable(p)):
            raise InputError(field, f"{str(p)!r} exists; pass --force to replace it")
        if not os.access(p, os.W_OK):
            raise InputError(field, f"{str(p)!r} is not writable")
    return p


def write_text_atomic(path: str | Path, text: str, field: str = "--out") -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a failed write keeps the old file."""
    p = Path(path).expanduser()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent if str(p.parent) else ".")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(field, f"cannot write {str(p)!r}: {exc.strerror or exc}") from None
    return p
