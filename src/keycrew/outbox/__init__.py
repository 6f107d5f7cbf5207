"""The e-mail outbox: every message is written here in the transaction of its cause, then delivered."""
