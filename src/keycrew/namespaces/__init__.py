"""The namespace tree below identity and access: routes, groups' and users' namespaces, projects."""
