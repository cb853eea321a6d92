"""The email sink's outbox (one row per message a subscription's email channel is sent) and
the stories each digest subscription collects until its next digest.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_deliveries",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subscription", sa.String(64), nullable=False),
        sa.Column("story_id", sa.String(32), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("recipients", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_email_deliveries_due", "email_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_email_deliveries_story", "email_deliveries", ["subscription", "story_id", "event"])
    op.create_table(
        "email_digest_items",
        sa.Column("subscription", sa.String(64), primary_key=True),
        sa.Column("story_id", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("alert", sa.JSON, nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(32)),
    )
    op.create_index("ix_email_digest_items_waiting", "email_digest_items", ["subscription", "digest", "added_at"])


def downgrade() -> None:
    op.drop_table("email_digest_items")
    op.drop_table("email_deliveries")
