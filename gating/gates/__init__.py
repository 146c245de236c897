"""The gates: the merge gate, the deploy gate, Jira-triggered re-evaluation and emergencies."""
