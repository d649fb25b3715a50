"""The shipped simulation hooks (used by `pitr-bot console`), re-exported for tests."""

from bot.console.simulated_aws import CreatingSimulation, Hook, simulate_creating, widen_window

__all__ = ["CreatingSimulation", "Hook", "simulate_creating", "widen_window"]
