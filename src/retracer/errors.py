"""User-facing errors: one clear line (what failed, which file, what to do)."""

class RetracerError(Exception):
    """An error the user caused or can fix; printed as one line, never a traceback.

    ``exit_code`` is the process status the CLI uses (2: usage or input error).
    """

    exit_code = 2

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class TraceError(RetracerError):
    """A trace file cannot be written or read; the message is one line."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        message = str(message).replace("\r", "\\r").replace("\n", "\\n")
        super().__init__(message, exit_code)
