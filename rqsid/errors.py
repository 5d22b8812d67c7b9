"""Exceptions a caller may want to tell apart, importable without Lightning or torch."""


class TrainingInterrupted(RuntimeError):
    """A training stopped by a signal (SIGTERM from a scheduler): its last checkpoint stays for resume=True."""


class ChecksumError(ValueError):
    """A downloaded or extracted file does not have its pinned hash; the message names the file."""
