"""Test helpers, not tests: real servers, the scripted model server, pipelines, data."""
