"""Records that actions are attributed to: issues and notes."""
