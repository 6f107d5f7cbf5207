"""The REST API, GitLab v4 compatible: routers, entities, pagination, error mapping, auth."""
