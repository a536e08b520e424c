"""The one exception type for mistakes a user can fix (bad file, bad key, bad value).

The CLI turns it into one red line on stderr and exit code 2; any other exception is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input, worded so the user knows what to do."""
