"""Git smart HTTP: the bridge between HTTP clients and `git http-backend`."""
