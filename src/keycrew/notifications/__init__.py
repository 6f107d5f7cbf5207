"""Who is told what: notification settings, recipients by GitLab's rules, and the e-mails keycrew writes."""
