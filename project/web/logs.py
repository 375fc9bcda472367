"""JSON log lines, each with its request's id, formatted and written in batches by a thread."""

import json
import logging
import os
import queue
import sys
import threading
import time
from contextvars import ContextVar
from typing import TextIO

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
LOG_INTERVAL = 0.05  # seconds between the writer's batches


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _BatchWriter(logging.StreamHandler[TextIO]):
    """Queues records, and writes them every LOG_INTERVAL seconds in one write: a thread woken
    for every record would take the GIL from the event loop once per request."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(JSONFormatter())
        self.start()

    def start(self) -> None:
        """A queue and a thread of its own: again in a forked worker, which has no thread."""
        self.records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        self.writing = threading.Lock()  # one writer at a time: the thread or `flush`
        threading.Thread(target=self._run, name="log-writer", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(LOG_INTERVAL)
            self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        """Queued unformatted, with the request id, which the writer's thread cannot know."""
        request_id, fields = current_request_id.get(), getattr(record, "fields", {})
        if request_id is not None and "request_id" not in fields:
            record.fields = {"request_id": request_id, **fields}
        self.records.put_nowait(record)

    def flush(self) -> None:
        with self.writing:  # the only reader of the queue: what is not empty can be taken
            lines = []
            while not self.records.empty():
                record = self.records.get_nowait()
                try:
                    lines.append(self.format(record) + "\n")
                except Exception:
                    self.handleError(record)
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except Exception:
                    self.handleError(record)


_writer: _BatchWriter | None = None


def configure_logging(level: str) -> None:
    global _writer
    if _writer is None:  # at exit, `logging.shutdown` flushes it
        _writer = _BatchWriter()
        os.register_at_fork(after_in_child=_writer.start)
    # Never written, so never collected (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("project")
    # Its own handler once, last; any other kept (a test's).
    root.handlers[:] = [*(handler for handler in root.handlers if handler is not _writer), _writer]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the request line replaces it


def flush_logs() -> None:
    """Write out every queued line (at shutdown: a signal may end the process, skipping atexit)."""
    if _writer is not None:
        _writer.flush()
