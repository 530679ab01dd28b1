"""Migrate, then seed: the demo hierarchy into an empty database and the bootstrap admin
(`aiteacher migrate`, the dev server, tests).

It lives outside `db/` because it calls the domains (`academics`, `identity`); `db/` stays platform code
that never imports a domain.
"""

from __future__ import annotations


def migrate_and_seed() -> dict[str, object]:
    """Upgrade to head, seed the demo hierarchy into an empty DB (dev/test or SEED_DEMO), bootstrap the admin."""
    from aiteacher.academics.service import seed_demo
    from aiteacher.config import get_settings
    from aiteacher.db import transaction
    from aiteacher.db.migrate import upgrade
    from aiteacher.identity.service import ensure_admin

    settings = get_settings()
    upgrade()
    report: dict[str, object] = {"seeded": False, "admin": None}
    with transaction() as session:
        if settings.should_seed_demo:
            report["seeded"] = seed_demo(session)
        if settings.admin_email and settings.admin_password:
            report["admin"] = ensure_admin(session, settings.admin_email, settings.admin_password)
    return report
