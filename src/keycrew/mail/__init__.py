"""E-mail out: renders the outbox's messages from their templates (Jinja2) and delivers them over SMTP."""
