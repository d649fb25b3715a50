"""The restore engine, split by concern around one shared context (see bot/workflow.py)."""
