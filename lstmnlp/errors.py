"""The one exception type for mistakes a user can fix (bad file, bad key, bad value).

The CLI turns it into one red line on stderr and exit code 2; any other exception is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, worded so the user knows what to do."""


class Interrupted(Exception):
    """Training stopped by a signal after writing a checkpoint; the CLI exits with `exit_code`."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code
