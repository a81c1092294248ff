"""``TriggerRule`` for DAG authors; it lives with the scheduling decisions that apply it."""

from slipstream.trigger_rule import TriggerRule

__all__ = ["TriggerRule"]
