"""Who may do what: the four roles and the permissions each one grants.

Pure data, shared by the CLI (``users create --role``), the web pages and the REST API, which
check a permission (never a role name) before every page and endpoint.
"""

from __future__ import annotations

from enum import StrEnum

from slipstream.errors import InvalidInputError


class Permission(StrEnum):
    #: DAGs, runs, task instances, logs, XComs, pools, import errors, the audit log
    READ = "read"
    #: pause and unpause DAGs, trigger runs, clear and mark tasks and runs
    OPERATE = "operate"
    #: connections, variables and pools: read their secrets' existence and change them
    MANAGE_CONFIG = "manage_config"
    #: create, change and delete users
    MANAGE_USERS = "manage_users"


class Role(StrEnum):
    #: everything, including users
    ADMIN = "Admin"
    #: everything but users: connections, variables and pools included
    OP = "Op"
    #: runs the DAGs: trigger, clear, mark, pause
    USER = "User"
    #: reads, changes nothing
    VIEWER = "Viewer"

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self]

    def allows(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self]


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.USER: frozenset({Permission.READ, Permission.OPERATE}),
    Role.OP: frozenset({Permission.READ, Permission.OPERATE, Permission.MANAGE_CONFIG}),
    Role.ADMIN: frozenset(Permission),
}


def parse_role(text: str) -> Role:
    """The role named ``text`` (any case), or one sentence listing the roles there are."""
    for role in Role:
        if role.value.lower() == text.strip().lower():
            return role
    names = ", ".join(r.value for r in Role)
    raise InvalidInputError(f"{text!r} is not a role; the roles are {names}")
