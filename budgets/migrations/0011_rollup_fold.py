from datetime import UTC, datetime

from django.db import migrations, models


def fold_until_today(apps, schema_editor):
    """Until now settlement added to the coarse rows inline: every day before today is complete
    in them. Today's rows stop being added to: it is folded from its day rows once it is over."""
    now = datetime.now(UTC)
    apps.get_model("budgets", "RollupFold").objects.create(
        pk=1, folded_until=now.replace(hour=0, minute=0, second=0, microsecond=0))


class Migration(migrations.Migration):

    dependencies = [
        ('budgets', '0010_rollup_grains_and_savings'),
    ]

    operations = [
        migrations.CreateModel(
            name='RollupFold',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('folded_until', models.DateTimeField(help_text='Start of the first UTC day not yet folded.')),
            ],
        ),
        migrations.RunPython(fold_until_today, migrations.RunPython.noop),
    ]
