"""The scheduler, work queue and workers: job heartbeats, and what a task instance needs to
be queued, claimed and watched.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_type", sa.String(length=30), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("hostname", sa.String(length=1000), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=2000), nullable=True),
        sa.Column("start_date", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=True),
        sa.Column("latest_heartbeat", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    op.create_index("ix_job_job_type_state", "job", ["job_type", "state"], unique=False)
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("scheduled_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("worker_job_id", sa.Integer(), nullable=True))
        batch.create_index(
            "ix_task_instance_state_queue_priority",
            ["state", "queue", "priority_weight"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_index("ix_task_instance_state_queue_priority")
        batch.drop_column("worker_job_id")
        batch.drop_column("scheduled_at")
    op.drop_index("ix_job_job_type_state", table_name="job")
    op.drop_table("job")
