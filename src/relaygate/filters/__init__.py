"""Filters that plug into the relay pipeline (the stage interfaces are in
``relaygate/stages.py``), and the loader for operator-supplied ones."""

from __future__ import annotations

import importlib

__all__ = ["load_filter"]


def load_filter(spec: str) -> object:
    """Build a filter from ``"package.module:factory"`` (``RELAYGATE_FILTERS``): the
    factory is called with no arguments (a class or a function) and returns an
    object implementing any of the stage hooks."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"filter {spec!r} must look like 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"filter {spec!r} could not be loaded: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"filter {spec!r} is not callable")
    return factory()
