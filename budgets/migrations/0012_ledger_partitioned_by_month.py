"""PostgreSQL: the ledger becomes a table partitioned by UTC month of `created_at`, its rows kept
in place as one legacy partition (budgets.partitions.convert_to_partitioned; docs/ledger.md,
"Upgrading"). Django's model is unchanged. SQLite: nothing happens."""

from django.db import migrations
from django.db.migrations.exceptions import IrreversibleError


def ledger_partition(apps, schema_editor):
    from budgets.partitions import convert_to_partitioned

    convert_to_partitioned(schema_editor)


def ledger_unpartition(apps, schema_editor):
    # Going back would mean copying every row into a plain table again.
    if schema_editor.connection.vendor == "postgresql":
        raise IrreversibleError("The ledger stays partitioned on PostgreSQL (docs/ledger.md).")


class Migration(migrations.Migration):
    # VALIDATE and CREATE INDEX CONCURRENTLY run outside a transaction, so that only the final
    # switch takes a lock that blocks the ledger (for catalog changes only).
    atomic = False

    dependencies = [
        ("budgets", "0011_rollup_fold"),
        # The feedback's link to a ledger row loses its database constraint first: it would
        # hold the plain table's primary key in place.
        ("llmops", "0007_feedback_link_without_constraint"),
    ]

    operations = [
        migrations.RunPython(ledger_partition, ledger_unpartition, elidable=False),
    ]
