"""Incoming e-mail transports for Service Desk: the built-in SMTP receiver and the IMAP poller."""
