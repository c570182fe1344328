"""One module per command's work; each takes plain arguments and returns a result to render."""
