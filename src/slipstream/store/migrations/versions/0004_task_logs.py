"""Task logs in the database: each try's log, shipped in chunks by the worker that ran it,
so that the web server and the CLI on any host can show it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_log_chunk",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dag_id", sa.String(length=250), nullable=False),
        sa.Column("run_id", sa.String(length=250), nullable=False),
        sa.Column("task_id", sa.String(length=250), nullable=False),
        sa.Column("map_index", sa.Integer(), nullable=False),
        sa.Column("try_number", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dag_id", "run_id"],
            ["dag_run.dag_id", "dag_run.run_id"],
            name=op.f("fk_task_log_chunk_dag_id_run_id_dag_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_log_chunk")),
    )
    op.create_index(
        "ix_task_log_chunk_try_offset",
        "task_log_chunk",
        ["dag_id", "run_id", "task_id", "map_index", "try_number", "offset"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_task_log_chunk_try_offset", table_name="task_log_chunk")
    op.drop_table("task_log_chunk")
