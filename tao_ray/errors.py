"""The one exception type for mistakes a user can make: the CLI prints its message as a single line, no traceback."""


class TaoError(Exception):
    """A user-fixable problem. The message is one line naming the file, line, key and the fix."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))
