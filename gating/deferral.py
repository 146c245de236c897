"""Work that cannot go on now but will later: the job is put back with a time to run again, never slept on.

A gate step raises `RetryLater` when what it waits for (a rate limit's reset, Jira coming back) is worth a
fresh attempt later; the job layer stores the delivery as queued again with a time before which no worker
takes it, so no worker thread is held while waiting.
"""

from __future__ import annotations


class RetryLater(Exception):
    """Run this delivery's job again in `seconds`; `reason` says why, safe to log and publish."""

    def __init__(self, seconds: float, reason: str) -> None:
        super().__init__(reason)
        self.seconds = max(float(seconds), 0.0)
        self.reason = reason


class Answered(Exception):
    """The job failed, but its outcome is already published (a deployment rejected with the error, say): running
    it again could change nothing, so it is not retried. The failure itself is the exception's cause."""
