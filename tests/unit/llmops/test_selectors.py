"""The API-key lookup runs SQL built once per process; it must return what the ORM returns."""

import pytest
from django.forms.models import model_to_dict

from llmops.models import ApiKey
from llmops.selectors import api_key_from_bearer


@pytest.mark.django_db
def test_key_lookup_matches_the_orm_field_for_field(api_key):
    orm = ApiKey.objects.select_related("team", "user").get(pk=api_key.api_key.pk)
    found = api_key_from_bearer(raw_key=api_key.key)  # read before it marks the key as used
    assert found is not None and not found._state.adding
    for mine, theirs in ((found, orm), (found.team, orm.team), (found.user, orm.user)):
        assert type(mine) is type(theirs)
        ours = {f.attname: getattr(mine, f.attname) for f in type(mine)._meta.concrete_fields}
        assert ours == {f.attname: getattr(theirs, f.attname)
                        for f in type(theirs)._meta.concrete_fields}
    assert found.created_at.tzinfo is not None  # converted as the ORM converts (SQLite: text)
    assert model_to_dict(found.team) == model_to_dict(orm.team)


@pytest.mark.django_db
def test_unknown_or_wrong_keys_find_nothing(api_key):
    prefix, _, _ = api_key.key.rpartition(".")
    assert api_key_from_bearer(raw_key=f"{prefix}.wrong-secret") is None
    assert api_key_from_bearer(raw_key="llmops-000000000000.nothing") is None


@pytest.mark.django_db
def test_a_deactivated_users_keys_find_nothing_in_the_same_one_query(
        api_key, django_assert_num_queries):
    assert api_key_from_bearer(raw_key=api_key.key) is not None  # marks the key used
    user = api_key.api_key.user
    user.is_active = False
    user.save(update_fields=["is_active"])
    with django_assert_num_queries(1):
        assert api_key_from_bearer(raw_key=api_key.key) is None
    assert not ApiKey.objects.usable().filter(pk=api_key.api_key.pk).exists()
    user.is_active = True
    user.save(update_fields=["is_active"])
    with django_assert_num_queries(1):
        assert api_key_from_bearer(raw_key=api_key.key) is not None
    assert ApiKey.objects.usable().filter(pk=api_key.api_key.pk).exists()


@pytest.mark.django_db
def test_pg_array_literals_read_back_as_the_values():
    """The hot statements pass arrays as text literals; PostgreSQL must parse them back exactly."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from django.db import connection

    from llmops.raw_rows import pg_array

    if connection.vendor != "postgresql":
        pytest.skip("array literals are PostgreSQL's")
    values = {
        "bigint": [3, 1, 2], "numeric": [Decimal("0.000000000001"), Decimal("12.5")],
        "boolean": [True, False],
        "timestamptz": [datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, 0, 0, tzinfo=UTC)],
    }
    with connection.cursor() as cursor:
        for sql_type, items in values.items():
            cursor.execute(f"SELECT %s::{sql_type}[]", [pg_array(items)])
            assert cursor.fetchone()[0] == items
    assert pg_array([]) == "{}"
