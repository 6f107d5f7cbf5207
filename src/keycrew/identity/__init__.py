"""Users and their types, internal users, service accounts, seats, ghost migration."""
