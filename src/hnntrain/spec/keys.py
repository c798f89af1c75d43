"""Every configuration key with its type, default and meaning, read from the config dataclasses.

The field docstrings (the string literal under each field) are the one description of a key:
``hnntrain config keys`` prints them and the README points there, so a key documented once is
documented everywhere. Python keeps no such docstrings at run time, so they are read from the
source with :mod:`ast`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class KeyDoc:
    key: str
    """Dotted key, e.g. ``device.nl_ltd``."""
    type: str
    """The field's annotation as written, e.g. ``float | None``."""
    default: Any
    doc: str
    """The field docstring, whitespace collapsed."""


def field_docs(cls: type) -> dict[str, str]:
    """``{field name: docstring}`` of a dataclass whose fields carry docstrings."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def config_keys() -> list[KeyDoc]:
    """Every key of :class:`RunConfig`, section by section, in declaration order."""
    from hnntrain.spec.config import RunConfig

    out = []
    for section in dataclasses.fields(RunConfig):
        cls = section.type if isinstance(section.type, type) else section.default_factory
        docs = field_docs(cls)
        for f in dataclasses.fields(cls):
            out.append(KeyDoc(f"{section.name}.{f.name}", str(f.type), _default(f), docs.get(f.name, "")))
    return out


def option_docs(cls: type) -> dict[str, tuple[Any, str]]:
    """``{option: (default, docstring)}`` of a scheme's options dataclass."""
    docs = field_docs(cls)
    return {f.name: (_default(f), docs.get(f.name, "")) for f in dataclasses.fields(cls)}


def keys_markdown() -> str:
    """The keys as a Markdown table (``hnntrain config keys --markdown``; docs/config.md)."""
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key in config_keys():
        name = "scheme.<option>" if key.key == "scheme.params" else key.key
        default = "see `hnntrain schemes`" if key.key == "scheme.params" else f"`{key.default!r}`"
        cells = (f"`{name}`", f"`{key.type}`", default, key.doc)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
