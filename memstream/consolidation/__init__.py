"""What a window becomes: window rules, LLM-free and LLM consolidation, reflection and its
schedule, and the job processor that applies them to a store. No Faust here: the worker,
rebuilds and tests all run the same code."""
