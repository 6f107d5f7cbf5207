"""Audit events: who did what, with which credential, to what."""
