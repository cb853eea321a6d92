"""What the dashboard and the API read stories by: their versions, their tags and their date.

``alert_versions`` keeps every version of a story as the alerts topic carried it (the
``alerts`` row keeps only the newest). ``alert_tags`` holds one row per region, pair of
regions, sector, pair and sector, and outlet of a story's newest version, with the story's date, so a filtered page is an index
range rather than a scan of JSON columns. ``alerts.story_at`` is that date: the first
article's publication time, or when the story was first alerted if the page gave none (or
gave one in the future).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_versions",
        sa.Column("story_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("written_at", UTC_DATETIME, nullable=False),
    )
    op.create_table(
        "alert_tags",
        sa.Column("story_id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(96), primary_key=True),
        sa.Column("story_at", UTC_DATETIME, nullable=False),
    )
    op.create_index("ix_alert_tags_lookup", "alert_tags", ["kind", "value", "story_at", "story_id"])
    if op.get_bind().dialect.name == "postgresql":
        # A value implies its kind ("RU-PRI" is a region); without these statistics the planner
        # multiplies the two as if independent, underestimates a busy region many times over
        # and hash-joins whole tag ranges instead of reading one page in date order.
        op.execute("CREATE STATISTICS alert_tags_kind_value (dependencies, mcv) ON kind, value FROM alert_tags")
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("story_at", UTC_DATETIME))
    op.execute(
        "UPDATE alerts SET story_at = CASE WHEN published_at IS NOT NULL AND published_at < alerted_at"
        " THEN published_at ELSE alerted_at END"
    )
    op.create_index("ix_alerts_story_at", "alerts", ["story_at", "id"])
    _tag_existing_stories()


def _tag_existing_stories() -> None:
    # The sinks tag every story they write from now on; these are the stories written before.
    connection = op.get_bind()
    alerts = sa.table(
        "alerts", sa.column("id"), sa.column("story_at", UTC_DATETIME), sa.column("source"),
        *(sa.column(name, sa.JSON) for name in ("regions", "russian_parties", "chinese_parties", "sectors", "outlets")),
    )
    tags = sa.table("alert_tags", sa.column("story_id"), sa.column("kind"), sa.column("value"), sa.column("story_at"))
    rows = []
    for story in connection.execute(sa.select(alerts)).mappings():
        places = {*story["regions"], *story["russian_parties"], *story["chinese_parties"]}
        regions = {place for place in places if place[:3] in ("RU-", "CN-")}
        pairs = {
            f"{russian}:{chinese}" for russian in regions if russian.startswith("RU-")
            for chinese in regions if chinese.startswith("CN-")
        }
        values = {
            "region": regions,
            "pair": pairs,
            "sector": set(story["sectors"]),
            "pair_sector": {f"{pair}:{sector}" for pair in pairs for sector in story["sectors"]},
            "source": {outlet["source"] for outlet in story["outlets"]} or {story["source"]},
        }
        rows += [
            {"story_id": story["id"], "kind": kind, "value": value, "story_at": story["story_at"]}
            for kind, chosen in values.items() for value in chosen
        ]
    if rows:
        connection.execute(tags.insert(), rows)


def downgrade() -> None:
    op.drop_index("ix_alerts_story_at", "alerts")
    with op.batch_alter_table("alerts") as alerts:
        alerts.drop_column("story_at")
    op.drop_table("alert_tags")
    op.drop_table("alert_versions")
