"""Dialogues, their messages, and training-job records with their status history.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "modelport_dialogues",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("assistant", sa.Text(), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("message_count", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_index("modelport_dialogues_updated", "modelport_dialogues", ["updated_at", "id"])
    op.create_index(
        "modelport_dialogues_assistant", "modelport_dialogues", ["assistant", "updated_at"]
    )
    op.create_table(
        "modelport_messages",
        sa.Column(
            "dialogue_id",
            sa.String(64),
            sa.ForeignKey("modelport_dialogues.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
    )
    op.create_table(
        "modelport_jobs",
        sa.Column("job_id", sa.Text(), primary_key=True),
        sa.Column("backend", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
    )
    op.create_table(
        "modelport_job_history",
        sa.Column(
            "job_id",
            sa.Text(),
            sa.ForeignKey("modelport_jobs.job_id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("modelport_job_history")
    op.drop_table("modelport_jobs")
    op.drop_table("modelport_messages")
    op.drop_table("modelport_dialogues")
