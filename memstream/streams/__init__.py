"""Topics, the input codec and producers: how records get onto and off the log."""
