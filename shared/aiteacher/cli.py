"""`aiteacher` command line: what runs in the images (migrate, create-admin, worker, reconcile, events, reindex),
plus the developer commands that aiteacher-devtools registers (dev, manifests, web-build, env-example)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from importlib.metadata import entry_points

COMMANDS_GROUP = "aiteacher.commands"


def _without_tokens() -> None:
    """Commands that never sign or verify a token run without JWT_SECRET (the migrate Job has none)."""
    os.environ.setdefault("JWT_REQUIRED", "false")


def _migrate(args: argparse.Namespace) -> int:
    _without_tokens()
    from aiteacher.db.migrate import downgrade
    from aiteacher.seed import migrate_and_seed

    if args.downgrade:
        downgrade(revision=args.downgrade)
        print(f"downgraded to {args.downgrade}")
        return 0
    report = migrate_and_seed()
    print(f"database at head; demo seeded: {report['seeded']}; admin: {report['admin'] or '-'}")
    return 0


def _create_admin(args: argparse.Namespace) -> int:
    _without_tokens()
    from aiteacher.db import transaction
    from aiteacher.db.migrate import upgrade
    from aiteacher.identity.service import ensure_admin

    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("Admin password (8-128 characters): ")
    upgrade()  # a fresh database gets the schema first (idempotent at head); no demo data
    try:
        with transaction() as session:
            user_id = ensure_admin(session, args.email, password)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"admin {args.email} ready (id {user_id})")
    return 0


def _worker(args: argparse.Namespace) -> int:
    import logging

    from aiteacher.queue import run_worker

    # Progress lines of long jobs ("document <id>: ocr 12/40") next to RQ's own log.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiteacher.progress").setLevel(logging.INFO)

    run_worker(args.queues.split(",") if args.queues else None, burst=args.burst)
    return 0


def _worker_health(args: argparse.Namespace) -> int:
    """Probe: exit 0 when Redis answers and a worker on this host has beaten recently."""
    import json

    from redis.exceptions import RedisError

    from aiteacher.queue import worker_health

    try:
        healthy, beats = worker_health(args.max_age)
    except RedisError as exc:
        print(json.dumps({"healthy": False, "error": f"Redis unreachable: {exc}"}))
        return 1
    print(json.dumps({"healthy": healthy, "workers": beats}))
    return 0 if healthy else 1


def _reconcile(_: argparse.Namespace) -> int:
    from aiteacher.reconcile import reconcile_round

    report = reconcile_round(force=True)
    print(f"re-queued {len(report.requeued)}, failed {len(report.failed)}")
    return 0


def _sqs_forward(args: argparse.Namespace) -> int:
    _without_tokens()
    from aiteacher import sqs_forward
    from aiteacher.config import get_settings

    settings = get_settings()
    queue_url = args.queue_url or settings.events_queue_url
    token = settings.events_token
    if not queue_url or not token:
        print("error: set --queue-url (or EVENTS_QUEUE_URL) and EVENTS_TOKEN", file=sys.stderr)
        return 2
    stats = sqs_forward.run(queue_url, args.target, token, once=args.once)
    print(f"forwarded {stats.forwarded}, failed {stats.failed}")
    return 0


def _reindex(_: argparse.Namespace) -> int:
    from aiteacher.curriculum.service import reindex_all

    ids = reindex_all()
    print(f"vector collection recreated; {len(ids)} documents queued for ingestion")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aiteacher", description="AI-Teacher operations")
    sub = parser.add_subparsers(dest="command", required=True)

    migrate = sub.add_parser("migrate", help="upgrade the database to head, seed demo data, bootstrap the admin")
    migrate.add_argument("--downgrade", metavar="REVISION", help="downgrade to REVISION instead (e.g. base)")
    migrate.set_defaults(func=_migrate)

    admin = sub.add_parser("create-admin", help="create or promote an admin (password from ADMIN_PASSWORD or prompt)")
    admin.add_argument("email")
    admin.set_defaults(func=_create_admin)

    worker = sub.add_parser("worker", help="run an RQ worker (queues: ingest, exams, summaries, notifications)")
    worker.add_argument("--queues", help="comma-separated subset of queues")
    worker.add_argument("--burst", action="store_true", help="exit when the queues are empty")
    worker.set_defaults(func=_worker)

    health = sub.add_parser("worker-health", help="exit 0 if a worker on this host is alive (liveness probe)")
    health.add_argument("--max-age", type=float, default=None, help="seconds a heartbeat stays fresh")
    health.set_defaults(func=_worker_health)

    sub.add_parser("reconcile", help="re-enqueue stuck documents and exams now (or fail them)").set_defaults(
        func=_reconcile
    )

    events = sub.add_parser("events", help="bucket event plumbing")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    forward = events_sub.add_parser("sqs-forward", help="forward S3 notifications from SQS to object-created")
    forward.add_argument("--queue-url", help="defaults to EVENTS_QUEUE_URL")
    forward.add_argument("--target", required=True, help="the object-created function URL")
    forward.add_argument("--once", action="store_true", help="one receive round, then exit")
    forward.set_defaults(func=_sqs_forward)

    sub.add_parser("reindex", help="recreate the vector collection and re-ingest every ready document").set_defaults(
        func=_reindex
    )
    # Developer commands (dev, manifests, web-build, env-example) come from the aiteacher-devtools package
    # (devtools/, installed by `make install`, never in a function image), found by its entry point: this
    # package never imports it.
    for command in entry_points(group=COMMANDS_GROUP):
        command.load()(sub)

    args = parser.parse_args(argv)
    from pydantic import ValidationError

    from aiteacher.vectors.base import VectorStoreError

    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except VectorStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        # Settings errors name the setting and the problem, never the values: pydantic's own text
        # repeats every input (ADMIN_PASSWORD, DATABASE_URL with its password, ...).
        for error in exc.errors(include_input=False, include_url=False):
            where = ".".join(str(part) for part in error.get("loc", ())) or "settings"
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
