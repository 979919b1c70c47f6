"""The one exception type a user sees.

Anything the user can fix (bad input, bad config, missing file, refused overwrite) raises `ElectraError` with a
one-line message that says what is wrong and where. The CLI prints it as `electra: error: <message>` and exits 2,
with no traceback. Everything else is a bug and keeps its traceback.
"""


class ElectraError(Exception):
    """A user-facing error: one line, says what is wrong and where; the CLI exits with code 2."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))
