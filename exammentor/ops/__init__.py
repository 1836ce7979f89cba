"""Operator commands: the CLI, migrations, backup and restore, retention, maintenance,
capacity, usage, the smoke test, the demo and the health routes."""
