"""Groups, projects, memberships, access levels and permission checks."""
