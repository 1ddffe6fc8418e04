"""The one exception type users see: a short message, printed as one line, exit code 2."""


class MaskclsError(Exception):
    """Bad input or a failed precondition; the message names the file and what is wrong."""

    exit_code = 2
