"""Use cases that cross entity packages: one function, one transaction, its audit events."""
