"""The passages' GIN index without a fast-update pending list (searched every turn, written rarely)."""

import django.contrib.postgres.indexes
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0006_crisp_channel_and_bot_avatar"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            # In place: no index rebuild. Entries already pending are merged into the index now.
            database_operations=[
                migrations.RunSQL(
                    "ALTER INDEX passage_search_gin SET (fastupdate = off);"
                    " SELECT gin_clean_pending_list('passage_search_gin'::regclass);",
                    reverse_sql="ALTER INDEX passage_search_gin RESET (fastupdate);",
                ),
            ],
            state_operations=[
                migrations.RemoveIndex(model_name="knowledgepassage", name="passage_search_gin"),
                migrations.AddIndex(
                    model_name="knowledgepassage",
                    index=django.contrib.postgres.indexes.GinIndex(
                        fastupdate=False, fields=["search_vector"], name="passage_search_gin"
                    ),
                ),
            ],
        ),
    ]
