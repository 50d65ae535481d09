"""`sloguard demo`: the whole story (burn, incident, Slack, rollback, recovery, review) on one machine."""
