"""Application services: the one implementation of every user action.

The CLI, the REST API and the web UI all call these functions. Each takes a session factory,
opens its own transaction and records the action in the audit log.
"""
