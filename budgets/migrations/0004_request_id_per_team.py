# Request ids (X-Request-ID) are unique per team, not across the whole ledger.

import uuid
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('budgets', '0003_reservation_principal'),
        ('llmops', '0003_team_default_max_tokens'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name='budgetreservation',
            name='request_id',
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name='usagerecord',
            name='request_id',
            field=models.CharField(default=uuid.uuid4, max_length=64),
        ),
        migrations.AddConstraint(
            model_name='budgetreservation',
            constraint=models.UniqueConstraint(fields=('request_id', 'team'), name='reservation_request_id_per_team'),
        ),
        migrations.AddConstraint(
            model_name='usagerecord',
            constraint=models.UniqueConstraint(fields=('request_id', 'team'), name='usage_request_id_per_team'),
        ),
    ]
