"""``slipstream users ...``: who may log in to the web UI and the REST API."""

from __future__ import annotations

from typing import Any

import click

from slipstream.cli.context import AppContext, pass_app
from slipstream.cli.output import emit, output_option
from slipstream.clock import utcnow
from slipstream.roles import Role
from slipstream.service import users as service
from slipstream.service.users import UserInfo

COLUMNS = ["username", "role", "email", "full_name", "active", "last_login_at"]
ROLES = click.Choice([r.value for r in Role], case_sensitive=False)


def _row(user: UserInfo) -> dict[str, Any]:
    return {
        "username": user.username,
        "role": user.role.value,
        "email": user.email,
        "full_name": user.full_name,
        "active": user.active,
        "last_login_at": user.last_login_at,
    }


def _password(given: str | None, username: str) -> str:
    if given is not None:
        return given
    password: str = click.prompt(
        f"Password for {username}", hide_input=True, confirmation_prompt=True
    )
    return password


@click.group(name="users")
def group() -> None:
    """Manage the users of the web UI and the REST API."""


@group.command()
@click.option("--username", "-u", required=True)
@click.option("--role", "-r", type=ROLES, required=True, help="Admin, Op, User or Viewer.")
@click.option("--email", "-e", help="Contact address (optional).")
@click.option("--full-name", help="Shown in the UI (optional).")
@click.option(
    "--password",
    "-p",
    help="The password; asked for (hidden, twice) when not given. Avoid it on shared hosts: "
    "it stays in the shell history.",
)
@pass_app
def create(
    app: AppContext,
    username: str,
    role: str,
    email: str | None,
    full_name: str | None,
    password: str | None,
) -> None:
    """Create a user with a role."""
    factory = app.ready_session_factory
    user = service.create_user(
        factory,
        username=username,
        role=role,
        password=_password(password, username),
        email=email,
        full_name=full_name,
        now=utcnow(),
        actor=app.actor,
    )
    click.echo(f"User {user.username} created with role {user.role.value}.")


@group.command(name="list")
@output_option
@pass_app
def list_(app: AppContext, output: str) -> None:
    """List users and their roles."""
    emit([_row(u) for u in service.list_users(app.ready_session_factory)], COLUMNS, output)


@group.command()
@click.option("--username", "-u", required=True)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def delete(app: AppContext, username: str, yes: bool) -> None:
    """Delete a user (they can no longer log in; the audit log keeps their name)."""
    factory = app.ready_session_factory
    service.get_user(factory, username)  # a missing user is an error before any question
    if not yes:
        click.confirm(f"Delete user {username}?", abort=True)
    service.delete_user(factory, username, actor=app.actor)
    click.echo(f"User {username} deleted.")


@group.command(name="reset-password")
@click.option("--username", "-u", required=True)
@click.option("--password", "-p", help="The new password; asked for when not given.")
@pass_app
def reset_password(app: AppContext, username: str, password: str | None) -> None:
    """Set a new password; the user's sessions and API tokens stop working."""
    factory = app.ready_session_factory
    service.get_user(factory, username)
    service.reset_password(
        factory, username, _password(password, username), now=utcnow(), actor=app.actor
    )
    click.echo(f"Password of {username} changed.")
