"""Bare git repositories under the data directory: create, initialise, remove."""
