"""The one exception type users see: a short message, printed as one line, exit code 2."""


class MaskclsError(Exception):
    """Bad input or a failed precondition; the message names the file and what is wrong."""

    exit_code = 2


def warn(message: str) -> None:
    """A line on stderr for what was skipped and goes on (a broken run in a table, a FIFO among photos)."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)
