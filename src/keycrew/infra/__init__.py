"""Infrastructure under the domain: transaction hooks, caches and their invalidation, background writers."""
