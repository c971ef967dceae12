"""Library messages through stdlib ``logging``, shown on the console as the CLI always showed them.

Every module logs to ``logging.getLogger("leannets.<module>")``. :func:`configure` (the CLI calls it; ``-q``
shows warnings only, ``-v`` adds debug messages) attaches one console handler to the ``leannets`` logger:
progress goes to stdout, notices and warnings to stderr (records logged with ``extra=STDERR``), one line
each. A program that configures logging itself keeps full control: :func:`ensure_console` only adds the
handler when no logging is configured at all (e.g. ``train(recipe, verbose=True)`` in a notebook).
"""
from __future__ import annotations

import logging
import sys

__all__ = ["ConsoleHandler", "configure", "ensure_console", "STDERR", "LOGGER"]

LOGGER = "leannets"
#: ``logger.info(msg, extra=STDERR)``: a notice that belongs on stderr beside the warnings.
STDERR = {"leannets_stderr": True}


class ConsoleHandler(logging.Handler):
    """stdout for progress, stderr for notices and warnings; the streams are looked up at each message."""

    def emit(self, record: logging.LogRecord) -> None:
        to_err = record.levelno >= logging.WARNING or getattr(record, "leannets_stderr", False)
        stream = sys.stderr if to_err else sys.stdout
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except BrokenPipeError:
            raise
        except Exception:  # noqa: BLE001 - logging must never take the program down
            self.handleError(record)


def configure(verbosity: int = 0) -> logging.Logger:
    """Console output of the ``leannets`` logger: ``verbosity`` < 0 warnings only, 0 info, > 0 debug."""
    logger = logging.getLogger(LOGGER)
    for h in [h for h in logger.handlers if isinstance(h, ConsoleHandler)]:
        logger.removeHandler(h)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO)
    logger.propagate = False
    return logger


def ensure_console() -> None:
    """Show library messages on the console unless the program configured logging (handlers anywhere)."""
    if not logging.getLogger(LOGGER).handlers and not logging.getLogger().handlers:
        configure(0)
