"""The one exception tree of slipstream.

Every error a user can cause derives from :class:`SlipstreamError`. The CLI (and later the
web API) is the single boundary that turns these into a sentence and an exit code; anything
else reaching that boundary is a bug and is shown as one.
"""

from __future__ import annotations


class SlipstreamError(Exception):
    """Base of every error slipstream raises on purpose. ``str(err)`` is the user's sentence."""

    exit_code = 1


# --- authoring -------------------------------------------------------------------------


class DagDefinitionError(SlipstreamError):
    """A DAG or operator was defined wrongly (bad argument, bad schedule...)."""


class DuplicateTaskIdError(DagDefinitionError):
    """Two tasks in one DAG share a task_id."""


class CycleError(DagDefinitionError):
    """The dependencies of a DAG form a cycle."""


class TemplateError(SlipstreamError):
    """A Jinja template failed to load or render."""


class XComError(SlipstreamError):
    """A value could not be stored as an XCom (for instance, it is not JSON-serializable)."""


class BranchError(SlipstreamError):
    """A branch task chose task ids it cannot follow (not its direct downstream tasks)."""


# --- signals a task raises to steer its own outcome ---------------------------------


class TaskControlSignal(Exception):
    """Base for exceptions a task raises on purpose to end its try in a given state."""


class SlipstreamSkipException(TaskControlSignal):
    """Raise inside a task to mark it skipped (Airflow: ``AirflowSkipException``)."""


class SlipstreamFailException(TaskControlSignal):
    """Raise inside a task to fail it at once, with no retry (Airflow: ``AirflowFailException``)."""


class SensorTimeout(SlipstreamFailException):
    """A sensor waited past its ``timeout``. Like Airflow's ``AirflowSensorTimeout`` it fails
    the task with no retry: another try would only wait for the same thing again."""


class TaskTimeoutError(SlipstreamError):
    """A task ran past its ``execution_timeout``."""


# --- configuration, storage, lookups -----------------------------------------------


class ConfigError(SlipstreamError):
    """The configuration (file or environment) holds a value slipstream cannot use."""


class DatabaseError(SlipstreamError):
    """The metadata database cannot be reached or is not in the expected shape."""


class NotFoundError(SlipstreamError):
    """Something asked for by id (DAG, run, task, variable, connection, pool) does not exist."""


class DagNotFound(NotFoundError):
    pass


class DagRunNotFound(NotFoundError):
    pass


class TaskNotFound(NotFoundError):
    pass


class VariableNotFound(NotFoundError):
    pass


class ConnectionNotFound(NotFoundError):
    pass


class PoolNotFound(NotFoundError):
    pass


class UserNotFound(NotFoundError):
    pass


class AuthenticationError(SlipstreamError):
    """Who is asking could not be established (no or wrong credentials)."""


class PermissionDenied(SlipstreamError):
    """The user is known but their role does not allow the action."""


class AlreadyExistsError(SlipstreamError):
    """Something to be created exists already."""


class InvalidInputError(SlipstreamError):
    """A value given on the command line, the API or in a file is not valid."""


class InvalidStateTransition(SlipstreamError):
    """A state change that the state machine does not allow was asked for."""


class DagImportError(SlipstreamError):
    """A DAG file could not be imported; the message says why."""
