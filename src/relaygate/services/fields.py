"""Field checkers and schemas: the building blocks of ``relaygate.services.validation``.

A checker is a pure function ``(field, value) -> normalized value`` that raises
:class:`ValidationError` naming the field. A :class:`Schema` maps field names to
:class:`Field` specs and validates a whole create or patch body at once: unknown fields are
refused with their names, required fields must be present, defaults are filled in on create.
New entities (prices, plans, codes) add a schema built from these checkers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from relaygate.errors import InvalidRequest

__all__ = [
    "INT_MAX",
    "Checker",
    "Field",
    "Schema",
    "ValidationError",
    "boolean",
    "choice",
    "http_url",
    "integer",
    "iso_datetime",
    "json_object",
    "nullable",
    "one_of_types",
    "string",
    "string_list",
    "string_map",
]

INT_MAX = 2**31 - 1  # the database's INTEGER columns (PostgreSQL int4)

Checker = Callable[[str, Any], Any]


class ValidationError(InvalidRequest):
    """Invalid input for an administrative write: ``field`` (also the error's ``param``)
    names the offending field, the message says what is expected."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message, param=field)
        self.field = field


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def string(
    min_len: int = 0, max_len: int = 128, *, no_space: bool = False, strip: bool = False
) -> Checker:
    """A string of ``min_len``..``max_len`` characters without control characters."""

    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError(name, f"`{name}` must be a string, not {_kind(value)}.")
        text = value.strip() if strip else value
        if len(text) < min_len:
            what = "must not be empty" if min_len == 1 else f"needs at least {min_len} characters"
            raise ValidationError(name, f"`{name}` {what}.")
        if len(text) > max_len:
            raise ValidationError(name, f"`{name}` must be at most {max_len} characters.")
        if _has_control(text):
            raise ValidationError(name, f"`{name}` must not contain control characters.")
        if no_space and any(c.isspace() for c in text):
            raise ValidationError(name, f"`{name}` must not contain whitespace.")
        return text

    return check


def choice(*values: str) -> Checker:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in values:
            known = ", ".join(f"'{v}'" for v in values)
            raise ValidationError(name, f"`{name}` must be one of {known}, not {value!r}.")
        return value

    return check


def integer(min_value: int = -INT_MAX, max_value: int = INT_MAX) -> Checker:
    """An integer (JSON number without a fraction; booleans are not integers)."""

    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(name, f"`{name}` must be an integer, not {_kind(value)}.")
        if not min_value <= value <= max_value:
            if max_value == INT_MAX:
                raise ValidationError(name, f"`{name}` must be an integer >= {min_value}.")
            raise ValidationError(
                name, f"`{name}` must be an integer from {min_value} to {max_value}."
            )
        return value

    return check


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(name, f"`{name}` must be true or false, not {_kind(value)}.")
    return value


def nullable(inner: Checker) -> Checker:
    """``inner``, or ``null``."""

    def check(name: str, value: Any) -> Any:
        return None if value is None else inner(name, value)

    return check


def one_of_types(*checkers: Checker, expected: str) -> Checker:
    """The first checker that accepts the value; otherwise an error saying ``expected``."""

    def check(name: str, value: Any) -> Any:
        for inner in checkers:
            try:
                return inner(name, value)
            except ValidationError:
                continue
        raise ValidationError(name, f"`{name}` must be {expected}.")

    return check


def string_list(
    min_items: int = 0, item: Checker | None = None, *, unique: bool = True, max_items: int = 1000
) -> Checker:
    """An array of strings, each checked by ``item`` (default: 1-128 characters)."""
    each = item or string(1, 128)

    def check(name: str, value: Any) -> list[str]:
        if not isinstance(value, list | tuple):
            raise ValidationError(name, f"`{name}` must be an array, not {_kind(value)}.")
        if len(value) < min_items:
            raise ValidationError(
                name, f"`{name}` must list at least {min_items} item{'s' * (min_items > 1)}."
            )
        if len(value) > max_items:
            raise ValidationError(name, f"`{name}` must list at most {max_items} items.")
        out = [each(f"{name}[{i}]", v) for i, v in enumerate(value)]
        if unique and len(set(out)) != len(out):
            dup = next(v for i, v in enumerate(out) if v in out[:i])
            raise ValidationError(name, f"`{name}` lists {dup!r} twice.")
        return out

    return check


def string_map(key: Checker | None = None, value: Checker | None = None) -> Checker:
    """An object whose keys and values are strings (default: 1-128 characters each)."""
    check_key = key or string(1, 128)
    check_value = value or string(1, 128)

    def check(name: str, obj: Any) -> dict[str, str]:
        if not isinstance(obj, dict):
            raise ValidationError(name, f"`{name}` must be an object, not {_kind(obj)}.")
        out: dict[str, str] = {}
        for k, v in obj.items():
            out[check_key(f"{name} key", k)] = check_value(f"{name}[{k!r}]", v)
        return out

    return check


def json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValidationError(name, f"`{name}` must be an object, not {_kind(value)}.")
    return dict(value)


def http_url(max_len: int = 512) -> Checker:
    """An ``http://`` or ``https://`` URL with a host; a trailing ``/`` is removed."""

    def check(name: str, value: Any) -> str:
        text = str(string(1, max_len, no_space=True)(name, value))
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ValidationError(name, f"`{name}` is not a valid URL: {text!r}.") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValidationError(
                name, f"`{name}` must be an http:// or https:// URL with a host, not {text!r}."
            )
        return text.rstrip("/")

    return check


def iso_datetime(name: str, value: Any) -> datetime:
    """An ISO-8601 date-time string (a time without an offset is taken as UTC)."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise ValidationError(
                name,
                f"`{name}` must be an ISO-8601 date-time such as 2030-01-31T12:00:00Z, "
                f"not {value!r}.",
            ) from None
    else:
        raise ValidationError(name, f"`{name}` must be an ISO-8601 string, not {_kind(value)}.")
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class Field:
    check: Checker
    required: bool = False
    default: Any = _MISSING  # filled in on create when the field is absent
    patchable: bool = True  # may a patch change it?


@dataclass(frozen=True, slots=True)
class Schema:
    """The fields of one entity's create and patch bodies."""

    entity: str
    fields: Mapping[str, Field]
    aliases: Mapping[str, str] = field(default_factory=dict)  # accepted on create only

    def _unknown(self, body: Mapping[str, Any], known: set[str]) -> None:
        unknown = [k for k in body if k not in known]
        if unknown:
            names = ", ".join(f"`{k}`" for k in unknown)
            allowed = ", ".join(sorted(known))
            raise ValidationError(
                unknown[0], f"Unknown field(s) for a {self.entity}: {names}. Known: {allowed}."
            )

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Every field checked; defaults filled in; required fields present."""
        _require_mapping(body)
        self._unknown(body, set(self.fields) | set(self.aliases))
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in body:
                out[name] = spec.check(name, body[name])
            elif spec.required:
                raise ValidationError(name, f"`{name}` is required for a {self.entity}.")
            elif spec.default is not _MISSING:
                out[name] = spec.default
        for alias in self.aliases:
            if alias in body:
                out[alias] = body[alias]  # checked by the entity's own rule
        return out

    def patch(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Only the fields given, each checked; at least one; none that cannot change."""
        _require_mapping(body)
        self._unknown(body, set(self.fields))
        fixed = [k for k in body if not self.fields[k].patchable]
        if fixed:
            raise ValidationError(
                fixed[0], f"`{fixed[0]}` of a {self.entity} cannot be changed after creation."
            )
        if not body:
            changeable = ", ".join(sorted(k for k, f in self.fields.items() if f.patchable))
            raise ValidationError(None, f"Nothing to change; give any of: {changeable}.")
        return {name: self.fields[name].check(name, value) for name, value in body.items()}


def _require_mapping(body: Any) -> None:
    if not isinstance(body, Mapping):
        raise ValidationError(None, f"The request body must be a JSON object, not {_kind(body)}.")
