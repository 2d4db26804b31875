"""Model instances from rows of hand-written SQL, converted as the ORM converts them.

The hot path runs a few queries whose SQL is built once per process (`functools.cache`), because
Django builds and compiles a queryset's SQL on every call, which costs more CPU than the round
trip. Their rows still need the ORM's per-backend conversions (SQLite returns naive datetimes
and strings for decimals; JSON arrives as text), so instances are made here with the same
converters the compiler would apply.
"""

from collections.abc import Sequence
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
