"""Model instances from rows of hand-written SQL, converted as the ORM converts them.

The hot path runs a few queries whose SQL is built once per process (`functools.cache`), because
Django builds and compiles a queryset's SQL on every call, which costs more CPU than the round
trip. Their rows still need the ORM's per-backend conversions (SQLite returns naive datetimes
and strings for decimals; JSON arrives as text), so instances are made here with the same
converters the compiler would apply.
"""

import json
import math
from collections.abc import Sequence
from decimal import Decimal
from functools import cache

from django.db import connection
from django.db.models import Model


@cache
def _converters(model: type[Model], vendor: str) -> tuple[list[str], list[tuple]]:
    names, converters = [], []
    for field in model._meta.concrete_fields:
        col = field.get_col(model._meta.db_table)
        names.append(field.attname)
        converters.append((col, tuple(connection.ops.get_db_converters(col)
                                      + col.get_db_converters(connection))))
    return names, converters


def table(model: type[Model]) -> str:
    """The quoted table name of `model`, for hand-written SQL."""
    return connection.ops.quote_name(model._meta.db_table)


def columns(model: type[Model], alias: str) -> list[str]:
    """The quoted `alias.column` of every concrete field of `model`, in `from_row` order."""
    qn = connection.ops.quote_name
    return [f"{alias}.{qn(field.column)}" for field in model._meta.concrete_fields]


def from_row(model: type[Model], values: Sequence) -> Model:
    """Return the `model` instance for `values` (selected as `columns(model, ...)`)."""
    names, converters = _converters(model, connection.vendor)
    converted = []
    for value, (col, field_converters) in zip(values, converters, strict=True):
        for convert in field_converters:
            value = convert(value, col, connection)
        converted.append(value)
    return model.from_db(connection.alias, names, converted)


def width(model: type[Model]) -> int:
    """How many values of a row `from_row` takes for `model`."""
    return len(model._meta.concrete_fields)


def pg_array(values: Sequence) -> str:
    """Return `values` as a PostgreSQL array literal in text form (`{1,2,3}`), for a parameter
    that the SQL casts (`%(ids)s::bigint[]`).

    psycopg's client-side binding (Django's default cursor) adapts a Python list by inspecting
    its elements to pick a dumper and quoting each one: on the admission and settlement
    statements that was ~7% of the gateway's Python CPU at concurrency 1 (py-spy). A string is
    quoted once. Elements are numbers, booleans or datetimes, whose text forms need no
    escaping; each is double-quoted anyway, which the array parser accepts for every type.
    """
    def text(value) -> str:
        if isinstance(value, bool):
            return "t" if value else "f"
        if hasattr(value, "isoformat"):
            return value.isoformat()
        return str(value)

    return "{" + ",".join(f'"{text(v)}"' for v in values) + "}"


def pg_json(value) -> str:
    """Return `value` (dicts and lists of text, numbers, Decimals, datetimes, None) as JSON text,
    for a parameter the SQL expands with `jsonb_populate_record(set)`.

    A statement with one parameter per column pays psycopg's quoting per parameter and, past 50
    parameters or 4,096 characters, a re-parse of its SQL on every run (psycopg caches the parse
    of smaller statements only); the settlement statement, a ledger row and its roll-ups, had
    about a hundred. One JSON text is quoted once. Decimals keep every digit (as JSON strings,
    which PostgreSQL's numeric input reads); a float that is not finite becomes null.
    """
    return json.dumps(value, default=_json_scalar, separators=(",", ":"), allow_nan=False)


def json_values(values: dict) -> dict:
    """Return `values` with non-finite floats as None (JSON has no NaN)."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()}


def _json_scalar(value):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a JSON parameter value")
