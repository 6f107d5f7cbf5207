"""Imports into keycrew: the source users of an import and the users that stand in for them
(placeholder users, the Import User of a top-level group, GitLab Migration Bot)."""
