"""YAML text for deployment files: keys in the given order, multi-line strings as literal blocks, a comment head."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing repeated values out in full (no ``&id001`` anchors, which readers trip on)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(documents: Iterable[Any], comments: Iterable[str] = ()) -> str:
    """Return ``documents`` as YAML (several are separated by ``---``), after ``# comment`` lines."""
    head = "".join(f"# {line}\n" for line in comments)
    body = yaml.dump_all(list(documents), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)
    return head + body
