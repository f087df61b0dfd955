"""The retrieval query service: a separate process that reads the stores over HTTP."""
