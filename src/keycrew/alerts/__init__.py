"""Alert management: HTTP integrations, alerts, incident settings (the Alert Bot)."""
