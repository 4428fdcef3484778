"""The tables, as SQLAlchemy Core sees them at the newest schema revision.

The migrations in ``migrations/versions`` create them; a test checks that the two agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator

__all__ = ["dialogues", "job_history", "jobs", "messages", "metadata", "usage"]


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime kept as naive UTC: the same column type, comparisons and
    sort order on every engine; read back with ``tzinfo=UTC``."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # the core's datetimes are aware; a naive one is UTC
            return value
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = sa.MetaData()

dialogues = sa.Table(
    "modelport_dialogues",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("assistant", sa.Text(), nullable=True),
    sa.Column("title", sa.Text(), nullable=True),
    sa.Column("message_count", sa.Integer(), nullable=False, server_default="0"),
    sa.Index("modelport_dialogues_updated", "updated_at", "id"),
    sa.Index("modelport_dialogues_assistant", "assistant", "updated_at"),
)

messages = sa.Table(
    "modelport_messages",
    metadata,
    sa.Column(
        "dialogue_id",
        sa.String(64),
        sa.ForeignKey("modelport_dialogues.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=True),
    #: The ``message/1`` record (parts, model, sentiment, usage) from the shared converter.
    sa.Column("record", sa.JSON(), nullable=False),
)

jobs = sa.Table(
    "modelport_jobs",
    metadata,
    sa.Column("job_id", sa.Text(), primary_key=True),
    sa.Column("backend", sa.Text(), nullable=False),
    sa.Column("status", sa.String(32), nullable=True),
    sa.Column("started_at", UtcDateTime(), nullable=True),
    sa.Column("updated_at", UtcDateTime(), nullable=True),
    #: The ``job/1`` record without its history (kept in ``modelport_job_history``).
    sa.Column("record", sa.JSON(), nullable=False),
)

job_history = sa.Table(
    "modelport_job_history",
    metadata,
    sa.Column(
        "job_id",
        sa.Text(),
        sa.ForeignKey("modelport_jobs.job_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
)

usage = sa.Table(
    "modelport_usage",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("capability", sa.String(32), nullable=False),
    sa.Column("backend", sa.Text(), nullable=False),
    sa.Column("model", sa.Text(), nullable=True),
    sa.Column("cost_usd", sa.Float(), nullable=True),
    #: The ``usage/1`` record from the shared converter.
    sa.Column("record", sa.JSON(), nullable=False),
)
