"""Fault injection for worker subprocesses of the fault suite (on PYTHONPATH only there):
AITEACHER_FAULT=kill-ingest makes every ingestion attempt SIGKILL its own work-horse, after the attempt
was recorded and before anything is indexed."""

import os

if os.environ.get("AITEACHER_FAULT") == "kill-ingest":
    import signal

    import aiteacher.ingestion.pdf as pdf

    def _die(*_args, **_kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    pdf.extract_pages = _die

if os.environ.get("AITEACHER_FAULT_DEBUG"):
    import faulthandler
    import signal as _signal
    import sys as _sys

    faulthandler.register(_signal.SIGUSR1, file=_sys.stderr, all_threads=True)
