"""Registries: the container registry token service and the PyPI package registry (adapters)."""
