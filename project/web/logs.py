"""JSON log lines, formatted and written in batches by a thread of their own, each carrying the
id of the request it was logged for."""

import atexit
import json
import logging
import os
import queue
import sys
import threading
from contextvars import ContextVar
from logging.handlers import QueueHandler

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


class _HandOver(QueueHandler):
    """Queues records unformatted, adding the request id, which the writer's thread cannot know."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        request_id, fields = current_request_id.get(), getattr(record, "fields", {})
        if request_id is not None and "request_id" not in fields:
            record.fields = {"request_id": request_id, **fields}
        return record


class _BatchWriter:
    """Writes the queued records every `interval` seconds, all in one write: a thread woken
    for every record would take the GIL from the event loop once per request."""

    def __init__(self, records: "queue.SimpleQueue[logging.LogRecord]", interval: float) -> None:
        self._records, self._interval = records, interval
        self._output = logging.StreamHandler(sys.stderr)
        self._output.setFormatter(JSONFormatter())
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # one writer at a time: the thread or `flush`
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.flush()

    def flush(self) -> None:
        with self._lock:  # the only reader of the queue: what is not empty can be taken
            lines = []
            while not self._records.empty():
                record = self._records.get_nowait()
                try:
                    lines.append(self._output.format(record) + "\n")
                except Exception:
                    self._output.handleError(record)
            if lines:
                try:
                    self._output.stream.write("".join(lines))
                    self._output.stream.flush()
                except Exception:
                    self._output.handleError(record)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        self.flush()


_records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
_writer: _BatchWriter | None = None


def _start_writer() -> None:
    global _records, _writer
    _records = queue.SimpleQueue()
    _writer = _BatchWriter(_records, LOG_INTERVAL)
    for handler in logging.getLogger("project").handlers:
        if isinstance(handler, _HandOver):
            handler.queue = _records


def _stop_writer() -> None:
    if _writer is not None:
        _writer.stop()


def configure_logging(level: str) -> None:
    if _writer is None:
        _start_writer()
        atexit.register(_stop_writer)
        # A forked worker has no writer thread: it starts its own, on a queue of its own.
        os.register_at_fork(after_in_child=_start_writer)
    # Never written, so never collected (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("project")
    # Its own handler replaced (configured again, a new app), any other kept (a test's).
    others = [handler for handler in root.handlers if not isinstance(handler, _HandOver)]
    root.handlers[:] = [*others, _HandOver(_records)]
    root.setLevel(level.upper())
    root.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # the request line replaces it


def flush_logs() -> None:
    """Write out every queued line (at shutdown: a signal may end the process, skipping atexit)."""
    if _writer is not None:
        _writer.flush()
