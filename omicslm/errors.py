"""Exceptions with messages a person can act on: which file, which record, what is wrong."""


class InputError(ValueError):
    """Bad user input. The message names the file, the record and the problem."""

    def __init__(self, path, problem, record=None):
        self.path = str(path)
        self.record = record
        self.problem = problem
        where = f"{self.path}" + (f", record {record}" if record is not None else "")
        super().__init__(f"{where}: {problem}")
