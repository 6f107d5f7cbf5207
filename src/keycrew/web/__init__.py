"""The web UI adapter: server-rendered pages (Jinja2) on the same domain use cases as the API."""
