"""The demo and ``make run``: tools, not part of the wheel."""
