"""Rebuilds (``memstream rebuild``): a new store version derived from the log, caught up with
the live tail and switched in one atomic step.

``plan`` (pure: what a replay keeps), ``events`` (events → store), ``messages`` (messages →
windows → memories), ``carry`` (what a rebuild from messages copies from live), ``report``
(counts and the printed report), ``run`` (the steps in order).
"""
