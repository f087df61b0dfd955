"""Rebuilds (``memstream rebuild``): a new store version derived from the log, caught up with
the live tail and switched in one atomic step."""
