"""Pure evaluation: facts and policy in, verdicts out. No I/O, no clock."""
