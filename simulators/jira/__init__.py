"""A Jira server (Cloud or Data Center flavour) speaking the real REST paths and JSON shapes, for tests and demos."""

from simulators.jira.render import ISSUE_NOT_FOUND, JIRA_TIME_FORMAT, REMOVED_SEARCH_MESSAGE, jira_time
from simulators.jira.simulator import JiraSimulator

__all__ = ["ISSUE_NOT_FOUND", "JIRA_TIME_FORMAT", "REMOVED_SEARCH_MESSAGE", "JiraSimulator", "jira_time"]
