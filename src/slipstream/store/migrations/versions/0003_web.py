"""The web interface and REST API: users, the source of each DAG file, the rendered template fields of each task
instance, and an index for the newest runs of a DAG.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "app_user",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=256), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("full_name", sa.String(length=500), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=500), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(), nullable=False),
        sa.Column("last_login_at", sa.DateTime(), nullable=True),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("last_failed_login_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_user")),
        sa.UniqueConstraint("username", name=op.f("uq_app_user_username")),
    )
    op.create_table(
        "dag_code",
        sa.Column("fileloc", sa.String(length=2000), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_hash", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("fileloc", name=op.f("pk_dag_code")),
    )
    with op.batch_alter_table("task_instance") as batch:
        batch.add_column(sa.Column("rendered_fields", sa.JSON(), nullable=True))
    op.create_index("ix_dag_run_dag_id_run_after", "dag_run", ["dag_id", "run_after"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_dag_run_dag_id_run_after", table_name="dag_run")
    with op.batch_alter_table("task_instance") as batch:
        batch.drop_column("rendered_fields")
    op.drop_table("dag_code")
    op.drop_table("app_user")
