"""From GitHub's or Jira's POST to a job: signatures, delivery records, routing, processing, health."""
