"""Turn pydantic validation errors into one-line :class:`~solver.errors.InputError` messages."""

from __future__ import annotations

from typing import Any, TypeVar

import pydantic

from solver.errors import InputError, suggest

M = TypeVar("M", bound=pydantic.BaseModel)


def first_error(exc: pydantic.ValidationError) -> tuple[str, str]:
    """Return ``(dotted field path, message)`` of the first error in ``exc``."""
    err = exc.errors(include_url=False)[0]
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
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
