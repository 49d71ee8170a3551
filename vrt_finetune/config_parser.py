"""One config/CLI mechanism for ``vrt-prep``, ``vrt-eval`` and ``vrt-export``: jsonargparse over
typed dataclasses, the library ``vrt-train`` (LightningCLI) is built on.

The signature is the config: each dataclass field is a key whose type is checked, whose attribute
docstring is its ``--help`` line and whose value ``__post_init__`` validates. Every command takes
``--config FILE`` (YAML or JSON; later arguments override it), ``--print_config`` (the whole
config with defaults filled in, as YAML) and dotted keys (``--source.path=/data/x``).

The forms of the commands' earlier argparse syntax keep working: :func:`legacy_argv` rewrites
them before parsing (see :data:`SYNTAX`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import types
from collections.abc import Mapping, Sequence
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml
from jsonargparse import (
    ActionConfigFile,
    ArgumentParser,
    DefaultHelpFormatter,
    Namespace,
    set_parsing_settings,
)

SYNTAX = """\
syntax: --key value or --key=value, nested keys dotted (--group.key value); booleans --key,
  --key true or --key false; lists --key [a,b] (quoted in a shell: '[a,b]'), --key a b, or the
  option repeated (--key a --key b); --key+ c appends to a list a --config file gave.
  --config FILE (YAML or JSON) sets any keys; arguments after it override them. --print_config
  prints the whole config, defaults filled in: a valid --config FILE. --dashed-names work for
  underscored keys."""
"""The accepted syntax, shown at the end of each command's ``--help``."""

_POSITIONAL_OVERRIDE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*=")
_TAKES_NO_VALUE = {"-h", "--help", "--print_config"}
_BOOL_WORDS = {"true", "false"}


class HelpFormatter(DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help (types, defaults) with the description and epilog kept as written."""


def dataclass_parser(
    *schemas: type,
    prog: str,
    description: str,
    exit_on_error: bool = True,
) -> ArgumentParser:
    """A parser whose keys are the fields of ``schemas`` (dataclasses; nested ones dotted).

    Args:
        schemas: dataclasses whose fields become top-level keys (names must not collide).
        prog: the command, for usage lines.
        description: the text at the top of ``--help``.
        exit_on_error: ``False``: parse errors raise ``argparse.ArgumentError`` instead of
            printing usage and exiting with status 2 (for programmatic callers).
    """
    parser = ArgumentParser(
        prog=prog,
        description=description,
        epilog=SYNTAX,
        formatter_class=HelpFormatter,
        exit_on_error=exit_on_error,
        print_config="--print_config",
    )
    parser.add_argument(
        "--config",
        action=ActionConfigFile,
        help="YAML (or JSON) file of any keys below; arguments after it override it.",
    )
    # Attribute docstrings (a string under a field) are the help text. The setting is global and
    # read while arguments are added, so it is on only here: left on, it made building
    # vrt-train's LightningCLI parser (demo, tests: same process) 3.5 s slower, for nothing.
    set_parsing_settings(docstring_parse_attribute_docstrings=True)
    try:
        for schema in schemas:
            parser.add_class_arguments(schema, nested_key=None, as_group=False)
    finally:
        set_parsing_settings(docstring_parse_attribute_docstrings=False)  # jsonargparse's default
    return parser


def build(schema: type, parser: ArgumentParser, cfg: Namespace) -> Any:
    """The ``schema`` instance of a parsed ``cfg``: nested dataclasses built, every
    ``__post_init__`` run (whose ``ValueError`` propagates)."""
    return from_namespace(schema, parser.instantiate(cfg))


def from_namespace(schema: type, init: Namespace) -> Any:
    """``schema`` from its fields in ``init``, a namespace whose nested dataclasses are built
    (``parser.instantiate``); other keys in it are ignored."""
    return schema(**{f.name: getattr(init, f.name) for f in dataclasses.fields(schema) if f.init})


def parse(schema: type, parser: ArgumentParser, argv: Sequence[str]) -> Any:
    """Parse ``argv`` (after :func:`legacy_argv`) into a ``schema`` instance.

    A validation error from ``__post_init__`` is reported like a parse error: usage and message,
    exit status 2 (or ``argparse.ArgumentError`` with ``exit_on_error=False``).
    """
    cfg = parser.parse_args(list(argv))
    try:
        return build(schema, parser, cfg)
    except (ValueError, TypeError) as err:
        parser.error(str(err))


def field_types(*schemas: type) -> dict[str, Any]:
    """``dotted key → type`` of every leaf field of ``schemas``, nested dataclasses walked."""
    out: dict[str, Any] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = _strip_none(hints[f.name])
            if dataclasses.is_dataclass(hint):
                walk(hint, f"{prefix}{f.name}.")  # type: ignore[arg-type]
            else:
                out[prefix + f.name] = hint

    for schema in schemas:
        walk(schema, "")
    return out


def legacy_argv(
    argv: Sequence[str],
    *schemas: type,
    positional_overrides: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> list[str]:
    """Rewrite the earlier argparse forms in ``argv`` into jsonargparse's, for the keys of
    ``schemas``; jsonargparse's own forms pass through unchanged.

    * ``--dashed-name`` → ``--dashed_name`` where that is a key;
    * a bare boolean flag ``--card`` → ``--card=true``;
    * several values after a list key, ``--delays 240 480`` (or ``--delays=240``) →
      ``--delays=[]`` then ``--delays+ 240 --delays+ 480``; a repeated list key adds to the list;
    * with ``positional_overrides``, ``key.sub=value`` → ``--key.sub=value`` (the value read
      as YAML, as ``vrt-prep`` did: ``path="/a b"`` gives ``/a b``);
    * ``aliases``: whole tokens replaced, e.g. ``{"--no-progress": "--progress=false"}``.
    """
    types_ = field_types(*schemas)
    aliases = aliases or {}
    out: list[str] = []
    started: set[str] = set()  # list keys given once already: later values add to them
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token in aliases:
            out.append(aliases[token])
            continue
        if not token.startswith("--"):
            if positional_overrides and _POSITIONAL_OVERRIDE.match(token):
                key, _, value = token.partition("=")
                out.append(f"--{key}={_override_value(value)}")
            else:
                out.append(token)
            continue
        name, eq, value = token[2:].partition("=")
        if name not in types_ and name.replace("-", "_") in types_:
            name = name.replace("-", "_")
        option, kind = f"--{name}", _kind(types_[name]) if name in types_ else None
        if kind == "list" and eq and not value.startswith("["):
            out += [f"{option}=[]"] * (name not in started) + [f"{option}+", value]
            started.add(name)
        elif eq:
            out.append(f"{option}={value}")
        elif kind == "flag":
            if i < len(argv) and argv[i].lower() in _BOOL_WORDS:
                out += [option, argv[i]]
                i += 1
            else:
                out.append(f"{option}=true")
        elif kind == "list" and i < len(argv) and not argv[i].startswith(("-", "[")):
            if name not in started:
                out.append(f"{option}=[]")
                started.add(name)
            while i < len(argv) and not argv[i].startswith("-"):
                out += [f"{option}+", argv[i]]
                i += 1
        else:
            out.append(option)
            if kind == "list":
                started.add(name)
            if option not in _TAKES_NO_VALUE and i < len(argv) and not argv[i].startswith("--"):
                out.append(argv[i])  # the option's value, verbatim (never an override)
                i += 1
    return out


def positionals_to_list(argv: Sequence[str], key: str, *schemas: type) -> list[str]:
    """Move the bare arguments of ``argv`` into the list key ``key`` of ``schemas``, so a command
    reads ``cmd a.wav --model M b.mp3`` as ``cmd --model M --key=["a.wav", "b.mp3"]``.

    A bare argument is one that is no option's value: an option written ``--opt=value`` takes
    none, a boolean takes a following ``true``/``false``, a list key every token up to the next
    option (as :func:`legacy_argv` reads them), ``--help``/``--print_config`` none, and any
    other option the next token. ``--key a b`` counts as bare, and after ``--`` every token
    does. The list, when there is one, goes last, so it overrides ``key`` in a ``--config``
    file.
    """
    types_ = field_types(*schemas)
    options: list[str] = []
    bare: list[str] = []
    tokens = list(argv)
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token == "--":
            bare += tokens[i:]
            break
        if not token.startswith("-"):
            bare.append(token)
            continue
        name, eq, _ = token.lstrip("-").partition("=")
        name = name.replace("-", "_")
        kind = _kind(types_[name]) if name in types_ else None
        if name == key and not eq:  # `--key a b`: the same as bare arguments
            while i < len(tokens) and not tokens[i].startswith("-"):
                bare.append(tokens[i])
                i += 1
            continue
        options.append(token)
        if eq or token in _TAKES_NO_VALUE or token == "-h":
            continue
        if kind == "list":
            while i < len(tokens) and not tokens[i].startswith("-"):
                options.append(tokens[i])
                i += 1
        elif i < len(tokens) and (
            tokens[i].lower() in _BOOL_WORDS if kind == "flag" else not tokens[i].startswith("--")
        ):
            options.append(tokens[i])
            i += 1
    return options + ([f"--{key}={json.dumps(bare)}"] if bare else [])


def _override_value(text: str) -> str:
    """A ``key=value`` override's value as jsonargparse reads it: strings bare, the rest JSON."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if value is None and not text.strip():
        return ""  # `key=`: the empty string, as `--key=` gives
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _strip_none(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _kind(hint: Any) -> str:
    if hint is bool:
        return "flag"
    if get_origin(hint) is list:
        return "list"
    return "value"
