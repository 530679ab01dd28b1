"""Fault injection for worker subprocesses of the fault suite (on PYTHONPATH only there):
AITEACHER_FAULT=kill-ingest makes every ingestion attempt SIGKILL its own work-horse, after the attempt
was recorded and before anything is indexed; AITEACHER_FAULT=term-at-start sends the worker a SIGTERM of
its own once it is registered, before RQ's loop (and its signal handlers) begins."""

import os

if os.environ.get("AITEACHER_FAULT") == "kill-ingest":
    import signal

    import aiteacher.ingestion.pdf as pdf

    def _die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    pdf.extract_pages = _die

if os.environ.get("AITEACHER_FAULT") == "term-at-start":
    import signal

    from rq.worker import BaseWorker

    _start_scheduler = BaseWorker._start_scheduler

    def _terminated_while_starting(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return _start_scheduler(self, *args, **kwargs)

    BaseWorker._start_scheduler = _terminated_while_starting

if os.environ.get("AITEACHER_FAULT_DEBUG"):
    import faulthandler
    import signal as _signal
    import sys as _sys

    faulthandler.register(_signal.SIGUSR1, file=_sys.stderr, all_threads=True)
