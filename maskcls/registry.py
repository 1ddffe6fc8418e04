"""Registries: name -> what builds it. The module that defines the entries fills its registry.

    LOSSES = Registry("loss")        # in engine/losses.py; "loss" is the setting whose value names an entry

    @LOSSES.register("focal")
    class Focal: ...

This module sits below everything (it imports only errors): config reads a registry's names
here (`names("loss")`) to check a setting, and never imports the engine or data modules that
fill them. Those fill their registries when imported (`maskcls.engine` and `maskcls.data` import
every module that registers), so whatever trains or builds has them filled; reading a registry
nobody filled is a programming error, said as such.
"""

from __future__ import annotations

import difflib

from maskcls.errors import MaskclsError

_ALL: dict[str, Registry] = {}


class Registry(dict):
    """A dict of name -> entry (a class or a function) that knows the setting it serves."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key
        _ALL[key] = self

    def __missing__(self, name):
        """A name nothing registered (a saved config from another version, say): one line, not a KeyError."""
        close = difflib.get_close_matches(str(name), list(self), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MaskclsError(f"{self.key} {name!r} is not one of {', '.join(self)}{hint}")

    def register(self, name: str):
        """Decorator: @REGISTRY.register("name") puts the class or function under that name."""

        def add(obj):
            if name in self:
                raise ValueError(f"{self.key} registry: {name!r} registered twice")
            self[name] = obj
            return obj

        return add


def names(key: str) -> list[str]:
    """The entries of the registry that serves setting `key`."""
    if key not in _ALL:
        raise RuntimeError(f"the {key!r} registry is not filled: import maskcls.engine and maskcls.data first")
    return list(_ALL[key])


def known(key: str) -> bool:
    return key in _ALL
