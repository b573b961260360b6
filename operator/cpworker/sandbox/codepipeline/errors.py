"""The error a handler raises to answer with an AWS JSON 1.1 error body."""

from __future__ import annotations


class ApiError(Exception):
    """An AWS error response: HTTP `status` with `{"__type": code, "message": message}`."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation(message: str) -> ApiError:
    return ApiError("ValidationException", message)
