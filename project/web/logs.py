"""The service's log lines: one JSON object per line, formatted and written by a thread of
their own, each carrying the id of the request it was logged for."""

import atexit
import json
import logging
import os
import queue
import sys
import threading
from contextvars import ContextVar
from logging.handlers import QueueHandler


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


# The id of the request being served, for every line logged while serving it.
current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class _HandOver(QueueHandler):
    """Queues records as they are: formatting and writing happen in the writer's thread,
    off the event loop (one JSON line and one write per request add up). Only the request
    id is added here, in the thread that logs: the writer's thread cannot know it."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        request_id = current_request_id.get()
        if request_id is not None:
            fields = getattr(record, "fields", {})
            if "request_id" not in fields:
                record.fields = {"request_id": request_id, **fields}
        return record


class _BatchWriter:
    """Formats and writes the queued records in a thread of its own, every `interval`
    seconds, all that are queued in one write. A thread woken for every record would take
    the GIL from the event loop once per request: that cost a tenth of the CPU time of a
    cheap request. A line reaches the output at most `interval` after it was logged."""

    def __init__(self, records: "queue.SimpleQueue[logging.LogRecord]", interval: float) -> None:
        self._records = records
        self._interval = interval
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
        """Write out every record queued so far."""
        with self._lock:
            lines = []
            while True:
                try:
                    record = self._records.get_nowait()
                except queue.Empty:
                    break
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


LOG_INTERVAL = 0.05  # seconds between the writer's batches
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
        # A process forked from this one (a server that imports the app, then forks its
        # workers) has no writer thread: it starts its own, on a queue of its own.
        os.register_at_fork(after_in_child=_start_writer)
    # A record's caller, thread and process are never written (see `JSONFormatter`): not
    # collecting them saves a stack walk and three lookups per line (the logging HOWTO's
    # "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger("project")
    # Its own handler replaced (configured again, a new app), any other kept (a test's).
    others = [handler for handler in root.handlers if not isinstance(handler, _HandOver)]
    root.handlers[:] = [*others, _HandOver(_records)]
    root.setLevel(level.upper())
    root.propagate = False
    # The structured line below replaces uvicorn's own access line.
    logging.getLogger("uvicorn.access").disabled = True


def flush_logs() -> None:
    """Write out every line queued so far (at shutdown: the process may end by a signal,
    which skips atexit)."""
    if _writer is not None:
        _writer.flush()
