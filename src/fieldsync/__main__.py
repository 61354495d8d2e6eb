"""The ``fieldsync`` command line: serve, migrate, user add, jurisdictions import (and more as
capabilities land).

Every command works against the same data directory whether or not ``serve`` is running there:
the embedded cluster is shared, and stopped by whichever process leaves it last.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from fieldsync import errors
from fieldsync.settings import Settings


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.serving import serve

    serve(settings, args.host, args.port)
    return 0


async def _with_connection(settings: Settings, work: Callable[..., Awaitable[int]]) -> int:
    from fieldsync.db import embedded
    from fieldsync.db.migrate import migrate
    from fieldsync.db.pool import connect

    async with embedded.database_url(settings.database_url.value, settings.data_dir) as dsn:
        conn = await connect(settings.migrate_database_url.value or dsn)
        try:
            applied = await migrate(conn)
            for name in applied:
                print(f"applied migration {name}", file=sys.stderr)
            return await work(conn)
        finally:
            await conn.close()


async def _with_database(settings: Settings, work: Callable[..., Awaitable[int]], *, migrate_first: bool) -> int:
    """Like ``_with_connection``, handing ``work`` the owner's database URL too (for PostgreSQL's tools)."""
    from fieldsync.db import embedded
    from fieldsync.db.migrate import migrate
    from fieldsync.db.pool import connect

    async with embedded.database_url(settings.database_url.value, settings.data_dir) as dsn:
        owner_dsn = settings.migrate_database_url.value or dsn  # the schema's owner reads and writes all of it
        conn = await connect(owner_dsn)
        try:
            if migrate_first:
                await migrate(conn)
            return await work(conn, owner_dsn)
        finally:
            await conn.close()


def _cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.ports import SystemClock
    from fieldsync.services import backup
    from fieldsync.storage import open_media_store

    async def work(conn: object, dsn: str) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        store = await open_media_store(settings)
        manifest = await backup.backup(conn, database_url=dsn, store=store, target=Path(args.directory),
                                       now=SystemClock().now(), progress=_stderr)
        print(f"backup written to {args.directory}: database ({manifest.dump_bytes} bytes, schema "
              f"{manifest.schema_version}), {len(manifest.originals)} photos, {len(manifest.derivatives)} "
              f"derivatives; snapshot {manifest.snapshot.split(':')[0]}")
        return 0

    return asyncio.run(_with_database(settings, work, migrate_first=True))


def _cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.services import backup
    from fieldsync.storage import open_media_store

    async def work(conn: object, dsn: str) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        store = await open_media_store(settings)
        done = await backup.restore(conn, database_url=dsn, store=store, source=Path(args.directory),
                                    progress=_stderr)
        print(f"restored the backup of {done['backup_created_at']}: {done['photos']} photos, "
              f"{done['derivatives']} derivatives; devices' pull cursors continue in feed epoch {done['epoch']}. "
              "Check it: fieldsync audit verify")
        return 0

    return asyncio.run(_with_database(settings, work, migrate_first=False))


def _stderr(line: str) -> None:
    print(f"  {line}", file=sys.stderr, flush=True)


def _cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(conn: object) -> int:
        print("database schema is up to date")
        return 0

    return asyncio.run(_with_connection(settings, work))


def _cmd_user_add(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.db.transactions import transaction
    from fieldsync.domain.principals import Role
    from fieldsync.ports import SystemClock
    from fieldsync.services import identity

    password: str | None = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty() and not args.token:
        password = getpass.getpass(f"password for {args.username} (empty: none): ") or None
    if password is not None and len(password) < 8:
        print("error: the password must have at least 8 characters", file=sys.stderr)
        return 2

    async def work(conn: object) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        now = SystemClock().now()
        async with transaction(conn):
            user = await identity.create_user(
                conn,
                None,
                username=args.username,
                role=Role(args.role),
                jurisdiction=args.jurisdiction,
                password=password,
                display_name=args.display_name,
            )
            print(f"created {user.role} {user.username} in {user.jurisdiction} (id {user.id})")
            if args.token:
                token, expires_at = await identity.issue_session(
                    conn, user_id=user.id, now=now, ttl_s=settings.session_ttl_s
                )
                print(f"token expires at {expires_at.isoformat()}:")
                print(token)
        return 0

    return asyncio.run(_with_connection(settings, work))


def _cmd_jurisdictions_import(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.db.transactions import transaction
    from fieldsync.services import reference

    path = Path(args.file)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = reference.parse_jurisdiction_csv(handle)
    except OSError as exc:
        print(f"error: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError:
        print(f"error: {path} is not UTF-8 text", file=sys.stderr)
        return 2
    print(f"read {len(rows)} jurisdictions from {path}", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if done % 100 == 0 or done == total:
            print(f"  {done}/{total}", file=sys.stderr, flush=True)

    async def work(conn: object) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        async with transaction(conn):
            counts = await reference.import_jurisdictions(conn, rows, progress=progress)
        print(f"added {counts.added} jurisdictions, {counts.present} already present")
        return 0

    return asyncio.run(_with_connection(settings, work))


def _cmd_gc(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.ports import SystemClock
    from fieldsync.services import gc
    from fieldsync.storage import open_media_store, open_spool, open_upload_area

    async def work(conn: object) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        store = await open_media_store(settings)
        spool = await open_spool(settings)
        result = await gc.collect(
            conn,
            store=store,
            spool=spool,
            upload_area=open_upload_area(settings, store, spool),
            now=SystemClock().now(),
            grace_s=settings.gc_grace_s,
            dry_run=args.dry_run,
            throttle_window_s=settings.throttle_window_s,
            progress=lambda line: print(f"  {line}", file=sys.stderr, flush=True),
        )
        verb = "would remove" if args.dry_run else "removed"
        print(f"gc {verb}: {len(result.unreferenced_media)} unreferenced media (grace {settings.gc_grace_s} s), "
              f"{len(result.orphan_objects)} objects without a row, {result.stale_spool_files} stale spool files, "
              f"{result.expired_uploads} expired uploads, {result.stale_throttle_counters} ended throttle windows; "
              f"{result.objects_scanned} objects scanned")
        for sha in result.unreferenced_media:
            print(f"  media {sha}")
        for key in result.orphan_objects:
            print(f"  object {key}")
        return 0

    return asyncio.run(_with_connection(settings, work))


class _ProgressBar:
    """A textual progress bar on stderr: redrawn in place on a terminal, a line per quarter else."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        self.stream, self.width = stream or sys.stderr, width
        self.tty = self.stream.isatty()
        self._last: tuple[str, int] | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        line = f"{stage:<8} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
            self.stream.flush()
            return
        quarter = (stage, 4 * done // max(total, 1))
        if quarter != self._last:
            self._last = quarter
            print(line, file=self.stream, flush=True)


DEMO_URL = "http://127.0.0.1:8000"  # where `fieldsync serve` listens by default


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    import uuid

    import msgspec

    from fieldsync.api.reports import to_submission
    from fieldsync.api.schemas.reports import ReportWrite
    from fieldsync.domain.reports import ReportSubmission
    from fieldsync.ports import SystemClock
    from fieldsync.services import demo
    from fieldsync.storage import open_media_store, open_spool

    def decode(report_id: uuid.UUID, body: dict[str, Any]) -> ReportSubmission:
        """The API's decoder: the demo's reports are canonical exactly as a device's would be."""
        return to_submission(report_id, msgspec.convert(body, ReportWrite))

    async def work(conn: object) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        store = await open_media_store(settings)
        spool = await open_spool(settings)
        size = demo.Size(hazards_per_county=args.hazards_per_county, incidents_per_county=args.incidents_per_county)
        summary = await demo.load_demo(
            conn, store=store, spool=spool, decode=decode, now=SystemClock().now(),
            max_pixels=settings.max_media_pixels, size=size, progress=_ProgressBar(),
        )
        print(f"长治市 demo: {summary.reports_created} reports loaded, {summary.reports_present} already present; "
              f"{summary.users_created} users and {summary.devices_enrolled} devices created, "
              f"{summary.photos_stored} photos stored, {summary.transitions} review actions replayed")
        print()
        print("Start the server and log in:")
        print(f"  fieldsync serve                     # then open {DEMO_URL}/schema")
        print(f"  curl -X POST {DEMO_URL}/v1/auth/login -H 'Content-Type: application/json' \\")
        print(f"       -d '{{\"username\": \"changzhi.city\", \"password\": \"{summary.password}\"}}'")
        print()
        print(f"Every demo user's password: {summary.password}  (users that existed before keep theirs)")
        for login in summary.logins:
            print(f"  {login.username:<20} {login.role:<11} {login.jurisdiction}  {login.display_name}")
        return 0

    return asyncio.run(_with_connection(settings, work))


def _cmd_audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.domain.audit import Anchor
    from fieldsync.services import audit

    lines = list(args.anchor or [])
    try:
        if args.anchor_file:
            with open(args.anchor_file, encoding="utf-8") as handle:
                lines += [line for line in handle if line.strip()]
        anchors = [Anchor.parse(line) for line in lines]
    except (OSError, ValueError) as exc:
        print(f"fieldsync audit verify: {exc}", file=sys.stderr)
        return 2

    async def work(conn: object) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        result = await audit.verify(conn)
        if not result.ok:
            where = f"event {result.broken_event_id}" if result.broken_event_id is not None else "the end of the chain"
            print(f"audit log BROKEN at {where} (chain {result.broken_chain}): {result.reason}")
            return 3
        for anchor in anchors:
            reason = await audit.check_anchor(conn, anchor)
            if reason is not None:
                print(f"audit log BROKEN against the anchor of {anchor.taken_at.isoformat()}: {reason}")
                return 3
        print(f"audit log intact: {result.events_checked} events in {result.chains_checked} chains"
              + (f"; {len(anchors)} anchor(s) match" if anchors else ""))
        return 0

    return asyncio.run(_with_connection(settings, work))


def _cmd_audit_anchor(args: argparse.Namespace, settings: Settings) -> int:
    from fieldsync.ports import SystemClock
    from fieldsync.services import audit

    async def work(conn: object) -> int:
        import asyncpg

        assert isinstance(conn, asyncpg.Connection)
        anchor = await audit.take_anchor(conn, now=SystemClock().now())
        print(anchor.line())
        print("keep this line off this machine (a ticket, an e-mail, paper); later: "
              "fieldsync audit verify --anchor '<line>'", file=sys.stderr)
        return 0

    return asyncio.run(_with_connection(settings, work))


def _cmd_collect_enroll(args: argparse.Namespace, settings: Settings) -> int:
    """Enroll a phone for ODK Collect; the last line of stdout is its server URL (it holds the token)."""
    from fieldsync.db.transactions import transaction
    from fieldsync.ports import SystemClock
    from fieldsync.services import collect

    base = args.url or settings.public_url or "http://127.0.0.1:8000"
    if not (args.url or settings.public_url):
        print("warning: no --url or FIELDSYNC_PUBLIC_URL; phones cannot reach 127.0.0.1", file=sys.stderr)

    async def work(conn: object) -> int:
        import asyncpg
        import segno

        assert isinstance(conn, asyncpg.Connection)
        async with transaction(conn):
            enrolled = await collect.enroll_collect(
                conn, None, username=args.username, label=args.label, public_base=base, now=SystemClock().now()
            )
        print(f"enrolled device {enrolled.device_id} for {args.username}")
        if args.qr:
            Path(args.qr).write_bytes(enrolled.qr_png)
            print(f"QR code for ODK Collect written to {args.qr}")
        elif sys.stdout.isatty():
            segno.make(enrolled.qr_text, error="m").terminal(compact=True)
        print("server URL (keep it secret: it holds the device token):")
        print(enrolled.server_url)
        return 0

    return asyncio.run(_with_connection(settings, work))


def _add_maintenance_commands(sub: Any) -> None:
    """``backup``, ``restore`` and ``gc``."""
    backup_cmd = sub.add_parser("backup", help="dump the database, then copy the photos it refers to, into DIR")
    backup_cmd.add_argument("directory", metavar="DIR",
                            help="a new or empty directory (an unfinished backup may be resumed)")
    backup_cmd.set_defaults(func=_cmd_backup)
    restore_cmd = sub.add_parser("restore", help="restore a backup from DIR into an empty data directory / database")
    restore_cmd.add_argument("directory", metavar="DIR", help="a directory written by fieldsync backup")
    restore_cmd.set_defaults(func=_cmd_restore)
    collect = sub.add_parser("gc", help="remove media no report references (after a grace period) and leftovers")
    collect.add_argument("--dry-run", action="store_true", help="report what would be removed, remove nothing")
    collect.set_defaults(func=_cmd_gc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fieldsync", description="fieldsync server and administration")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service (embedded PostgreSQL unless configured)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=_cmd_serve)

    migrate = sub.add_parser("migrate", help="apply pending database migrations")
    migrate.set_defaults(func=_cmd_migrate)

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True)
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=["admin", "supervisor", "inspector"])
    add.add_argument("--jurisdiction", required=True, help="GB/T 2260 code, e.g. 140400")
    add.add_argument("--display-name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--token", action="store_true", help="print a bearer token as the last line")
    add.set_defaults(func=_cmd_user_add)

    places = sub.add_parser("jurisdictions", help="manage jurisdictions")
    places_sub = places.add_subparsers(dest="jurisdictions_command", required=True)
    load = places_sub.add_parser(
        "import", help="add jurisdictions from a UTF-8 CSV file: code,name_zh,name_en[,parent_code]"
    )
    load.add_argument("file", help="CSV file; codes already present are skipped")
    load.set_defaults(func=_cmd_jurisdictions_import)

    audit = sub.add_parser("audit", help="the audit trail")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="walk every hash chain; name the first broken row")
    verify.add_argument("--anchor", action="append", metavar="LINE",
                        help="also check an anchor line printed by 'audit anchor' (repeatable)")
    verify.add_argument("--anchor-file", metavar="FILE", help="also check every anchor line in FILE")
    verify.set_defaults(func=_cmd_audit_verify)
    anchor = audit_sub.add_parser(
        "anchor", help="print a digest of the settled audit log, to keep off this machine and verify against later"
    )
    anchor.set_defaults(func=_cmd_audit_anchor)

    sample = sub.add_parser("demo", help="load the 长治市 demo (users, devices, reports, photos); safe to re-run")
    sample.add_argument("--hazards-per-county", type=int, default=20, metavar="N", help="default 20")
    sample.add_argument("--incidents-per-county", type=int, default=2, metavar="N", help="disasters; default 2")
    sample.set_defaults(func=_cmd_demo)

    _add_maintenance_commands(sub)

    odk = sub.add_parser("collect", help="ODK Collect / KoboCollect phones")
    odk_sub = odk.add_subparsers(dest="collect_command", required=True)
    enroll = odk_sub.add_parser("enroll", help="enroll a phone for an inspector and make the QR code Collect scans")
    enroll.add_argument("username", help="an inspector user")
    enroll.add_argument("--label", default="ODK Collect", help="the device's name in the device list")
    enroll.add_argument("--qr", metavar="FILE.png", help="write the QR code as a PNG (else drawn on a terminal)")
    enroll.add_argument("--url", help="how phones reach this server, e.g. https://fieldsync.example.cn "
                                      "(default: FIELDSYNC_PUBLIC_URL)")
    enroll.set_defaults(func=_cmd_collect_enroll)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings))
    except errors.FieldsyncError as exc:
        print(f"error: {exc.detail} [{exc.code}]", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
