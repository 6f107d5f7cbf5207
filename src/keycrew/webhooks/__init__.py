"""Webhooks: project, group and system hooks, the payloads of their events, and their delivery."""
