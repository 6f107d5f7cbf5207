"""The instance: its settings, plan and paid seats."""
