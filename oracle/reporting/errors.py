"""Errors of report building and decoding."""

from oracle.errors import MiraError


class ReportError(MiraError):
    """A report could not be built or read."""


class ReportFormatError(ReportError, ValueError):
    """Bytes or fields that do not fit the report format; says which field and why."""


class PullFormatError(ReportFormatError):
    """Bytes or fields that do not fit the pull format (tree, multiproof, payload)."""
