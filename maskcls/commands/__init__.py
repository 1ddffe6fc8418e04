"""One module per command: options -> config -> library call -> exit code."""
