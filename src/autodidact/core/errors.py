"""User-facing errors.

A `UserError` is a problem with what the user handed us (a file, a flag, a config value). The CLI
prints its message as one line and exits with code 2, with no traceback. Anything else is a bug.
"""


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = 2

    def __str__(self):
        # Printed as one line, but paths and --set values may hold newlines: escape them.
        return super().__str__().replace("\r", "\\r").replace("\n", "\\n")


class DataError(UserError):
    """A dataset file is unreadable or fails validation. The message names file, field and index."""

    def __init__(self, path, field, problem, hint=None):
        self.path, self.field, self.problem = str(path), field, problem
        msg = f"{self.path}: field '{field}': {problem}" if field else f"{self.path}: {problem}"
        if hint:
            msg += f" ({hint})"
        super().__init__(msg)
