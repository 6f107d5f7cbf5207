"""Jobs and bots: admin bot, notifications, cleanup, support/alert/security bots."""
