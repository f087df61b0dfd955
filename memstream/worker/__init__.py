"""The Faust worker process: the app, its agents (ingest, jobs, timers) and their delivery
bookkeeping (acks, offsets, transport). Memory rules live in :mod:`memstream.consolidation`."""
