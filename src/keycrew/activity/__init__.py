"""Contribution events (GitLab's ``events`` and ``push_event_payloads``): who did what, where."""
