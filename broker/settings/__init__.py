"""Warren's settings file, in RabbitMQ's ``rabbitmq.conf`` format.

    from broker.settings import load_settings, apply_environment
    settings = apply_environment(load_settings("/etc/warren/rabbitmq.conf"))
    settings = settings.with_overrides(data_dir="./data")   # command line last
    for line in settings.to_lines():
        log.info("settings", line=line)

`load_settings` reads a file (and what it includes), checks every key and
value as RabbitMQ would, and returns a frozen `Settings` with RabbitMQ's
defaults for what the file does not set; or raises `SettingsError` with every
problem of every file, one ``file:line: key: message`` line each. Precedence:
the file, then the environment (`apply_environment`), then the command line
(`Settings.with_overrides`). docs/settings.md lists the keys.

The package is pure: standard library only, no trio, no other broker module
(``parser`` the syntax, ``values`` the value syntaxes, ``schema`` the keys,
``model`` the `Settings` classes).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from broker.settings.model import (
    AbsoluteLimit,
    ClusterSettings,
    EtcdSettings,
    HTTPListener,
    HTTPSListener,
    Listener,
    Permissions,
    RelativeLimit,
    Settings,
    TLSOptions,
)
from broker.settings.parser import Entry, Problem, SettingsError, read_files, substitute
from broker.settings.schema import KEYS, build

__all__ = [
    "KEYS",
    "AbsoluteLimit",
    "ClusterSettings",
    "EtcdSettings",
    "HTTPListener",
    "HTTPSListener",
    "Listener",
    "Permissions",
    "Problem",
    "RelativeLimit",
    "Settings",
    "SettingsError",
    "TLSOptions",
    "apply_environment",
    "load_settings",
    "parse_settings",
]

#: The environment variables `apply_environment` reads, and the field each sets.
ENVIRONMENT: Mapping[str, str] = {
    "WARREN_DEFAULT_USER": "default_user",
    "WARREN_DEFAULT_PASS": "default_pass",
}


def _load(path: str | os.PathLike[str], text: str | None, environ: Mapping[str, str] | None) -> Settings:
    entries, problems = read_files(path, text)
    entries, more = substitute(entries, os.environ if environ is None else environ)
    settings, invalid = build(entries)
    problems = _in_reading_order(problems + more + invalid, entries)
    if problems or settings is None:
        raise SettingsError(problems)
    return settings


def _in_reading_order(problems: list[Problem], entries: list[Entry]) -> list[Problem]:
    """Problems file by file (in the order the files were read), line by line."""
    rank: dict[str, int] = {}
    for path in [e.path for e in entries] + [p.path for p in problems]:
        rank.setdefault(path, len(rank))
    # a file that could not be read at all, or an include problem, comes first
    return sorted(problems, key=lambda p: (rank[p.path], p.line or 0))


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """The `Settings` of a ``rabbitmq.conf`` file, or `SettingsError` listing every problem.

    ``environ`` (default: ``os.environ``) answers the file's ``$(NAME)``
    substitutions that no key of the file answers, as in RabbitMQ. It is not
    `apply_environment`: call that on the result for ``WARREN_DEFAULT_*``.
    """
    return _load(path, None, environ)


def parse_settings(
    text: str, path: str | os.PathLike[str] = "<string>", environ: Mapping[str, str] | None = None
) -> Settings:
    """`load_settings` for text at hand; ``path`` names it in messages and anchors
    relative paths (includes, certificate files)."""
    return _load(path, text, environ)


def apply_environment(settings: Settings, environ: Mapping[str, str] | None = None) -> Settings:
    """``settings`` with ``WARREN_DEFAULT_USER`` / ``WARREN_DEFAULT_PASS`` applied.

    ``environ`` defaults to ``os.environ``. A variable that is set overrides the
    file's ``default_user`` / ``default_pass``; one set to the empty string is
    a ValueError (an empty user name or password cannot log in).
    """
    env = os.environ if environ is None else environ
    changes: dict[str, str] = {}
    for variable, field in ENVIRONMENT.items():
        value = env.get(variable)
        if value is None:
            continue
        if value == "":
            raise ValueError(f"{variable} is set but empty")
        changes[field] = value
    if not changes:
        return settings
    overridden = settings.with_overrides(**changes)
    return overridden
