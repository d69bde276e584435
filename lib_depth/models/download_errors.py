"""What a download that did not produce a verified file raises: one class per cause a user can act on,
each with a message that says what to do (the command line prints it, the WebUI shows it)."""

from __future__ import annotations


class DownloadError(ValueError):
    """A download that did not produce a verified file; the message says what to do."""


class DownloadCancelled(DownloadError):
    pass


class ChecksumMismatch(DownloadError):
    pass


class NotEnoughSpace(DownloadError):
    pass


class AlreadyExists(DownloadError):
    pass


class Unreachable(DownloadError):
    """No mirror answered at all: offline, blocked by a firewall, or DNS fails."""


class OfflineMode(DownloadError):
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is on: no connection is opened at all."""
