"""Service Desk: e-mail to a project's address becomes a confidential issue by Support Bot."""
