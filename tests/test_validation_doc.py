"""docs/validation.md gives shell commands that reproduce its hnntrain numbers; every one must
still name real keys with valid values (a renamed key would make the table unreproducible)."""

import re
import shlex
from pathlib import Path

from hnntrain.io.resolve import build_config, parse_value

DOC = Path(__file__).parent.parent / "docs" / "validation.md"


def doc_run_commands() -> list[list[str]]:
    block = re.search(r"```sh\n(.*?)```", DOC.read_text(), re.S).group(1)
    variables: dict[str, str] = {}
    commands = []
    for line in block.splitlines():
        if m := re.fullmatch(r'(\w+)="(.*)"', line):
            variables[m.group(1)] = m.group(2)
        elif line.startswith("hnntrain run"):
            expanded = re.sub(r"\$(\w+)", lambda v: variables[v.group(1)], line)
            commands.append(shlex.split(expanded)[2:])
    return commands


def test_validation_doc_commands_resolve_to_valid_configs():
    commands = doc_run_commands()
    assert len(commands) >= 9
    outs = set()
    for args in commands:
        values = {}
        for flag, value in zip(args, args[1:]):
            if flag == "--set":
                key, text = value.split("=", 1)
                values[key] = parse_value(text)
            elif flag == "--scheme":
                values["scheme.name"] = value
            elif flag == "--out":
                outs.add(value)
        cfg = build_config(values)
        assert cfg.scheme.name in {"fp", "sgd", "mixed_precision", "neurosim", "tiki_taka"}
    assert len(outs) == len(commands)  # one folder per row
