"""The one exception malformed, hostile or unusable input raises from any extractor."""

from __future__ import annotations


class DocumentRejected(Exception):
    """A file that cannot be ingested. `code` is stable and machine-readable; `message` is shown to users."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self) -> tuple[type[DocumentRejected], tuple[str, str]]:
        # Keeps the exception picklable (job queues and process pools pickle exceptions).
        return (type(self), (self.code, self.message))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"
