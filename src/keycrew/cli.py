"""The `keycrew` command: serve, migrate, and operator tasks from the shell.

Exit codes: 0 done, 1 failed (the message says why), 2 wrong usage or bad configuration.
Results go to stdout, messages to stderr, so that scripts can capture a result alone.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO

import typer

from keycrew import GITLAB_COMPAT_VERSION, __version__

# The rest is imported where it is used: `--help` and `version` answer without loading the
# database layer, and a first-time operator's `keycrew --help` is instant.
if TYPE_CHECKING:
    from pydantic import ValidationError

    from keycrew.bootstrap import RootCredentials, Runtime
    from keycrew.config import Settings
    from keycrew.errors import KeycrewError

EXIT_FAILURE = 1
EXIT_USAGE = 2

app = typer.Typer(
    help="keycrew: identities and access tokens for the machines of a software forge "
    "(GitLab REST API v4 compatible).\n\n"
    "Settings come from KEYCREW_* environment variables (see docs/operations.md); "
    "the data directory is KEYCREW_DATA_DIR, ./data by default.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # A traceback's local variables could hold passwords or token values.
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(
    help="Database schema: apply migrations, check them against the models.", no_args_is_help=True
)
users_app = typer.Typer(help="Manage users from the shell.", no_args_is_help=True)
tokens_app = typer.Typer(help="Issue personal access tokens from the shell.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(tokens_app, name="tokens")
license_app = typer.Typer(help="The instance's license: plan and paid seats.", no_args_is_help=True)
jobs_app = typer.Typer(
    help="Background jobs: list them with their last outcome, run one now (cron, operators).",
    no_args_is_help=True,
)
app.add_typer(license_app, name="license")
app.add_typer(jobs_app, name="jobs")
registry_app = typer.Typer(
    help="The container registry token service: docker-registry settings, signing key rotation.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")
report_app = typer.Typer(help="Read-only reports on the instance (token hygiene).", no_args_is_help=True)
app.add_typer(report_app, name="report")
mail_app = typer.Typer(help="Outgoing e-mail: check the SMTP settings.", no_args_is_help=True)
app.add_typer(mail_app, name="mail")


def _fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    typer.secho(f"keycrew: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _describe(exc: KeycrewError) -> str:
    errors = getattr(exc, "errors", None)
    if errors:
        return "; ".join(f"{field} {' and '.join(msgs)}" for field, msgs in errors.items())
    # The domain's plain message; without one, the kind of error ("forbidden", "not found").
    return exc.message or exc.code.replace("_", " ")


def _fail_domain(exc: KeycrewError) -> NoReturn:
    """A use case's error, of any kind: its reason on stderr and exit code 1 (in this one place)."""
    _fail(_describe(exc), EXIT_FAILURE)


def _describe_settings(exc: ValidationError) -> str:
    """One line per bad setting, named as the operator sets it (KEYCREW_PORT: ...)."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        name = f"KEYCREW_{field.upper()}" if field else "settings"
        lines.append(f"{name}: {error['msg'].removeprefix('Value error, ')}")
    return "\n  ".join(lines)


def _settings(**overrides: object) -> Settings:
    """The settings from the environment, with the command line's values (not None) on top."""
    from pydantic import ValidationError

    from keycrew.config import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        _fail(f"bad configuration:\n  {_describe_settings(exc)}", EXIT_USAGE)


@contextmanager
def _operator_errors(settings: Settings) -> Iterator[None]:
    """Turn what an operator can fix (database down, disk, permissions) into one readable line."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    try:
        yield
    except (ArgumentError, NoSuchModuleError) as exc:
        _fail(f"bad KEYCREW_DATABASE_URL: {exc}", EXIT_USAGE)
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        _fail(f"database error ({_safe_url(settings)}): {detail}")
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))


def _safe_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(settings.sqlalchemy_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "unparsable URL"


def _runtime(settings: Settings, *, banner: TextIO | None = None) -> Runtime:
    """Build the runtime and bring the schema up to date; exits with a message on failure.

    With a banner stream, an empty database also gets its root administrator first (so that
    root is always user 1), and root's credentials are printed there once.
    """
    from keycrew.bootstrap import build, migrate, seed
    from keycrew.migrations import startup_lock

    with _operator_errors(settings):
        try:
            runtime = build(settings)
        except ValueError as exc:  # an unusable secret key file
            _fail(str(exc))
        with startup_lock(runtime.engine):
            migrate(runtime)
            creds = seed(runtime) if banner is not None else None
        if banner is not None and creds is not None:
            print_credentials(creds, settings.external_url, banner)
    return runtime


def print_credentials(creds: RootCredentials, url: str, out: TextIO) -> None:
    bar = "=" * 72
    lines = [
        bar,
        "keycrew created the root administrator (shown once, keep them safe):",
        f"  URL:      {url}",
        "  username: root",
    ]
    lines.append(
        f"  password: {creds.password}"
        if creds.password_generated
        else "  password: (from KEYCREW_INITIAL_ROOT_PASSWORD)"
    )
    lines.append(
        f"  token:    {creds.token}"
        if creds.token_generated
        else "  token:    (from KEYCREW_INITIAL_ROOT_TOKEN)"
    )
    lines += [f"  try:      curl -H 'PRIVATE-TOKEN: <token>' {url}/api/v4/user", bar]
    print("\n".join(lines), file=out, flush=True)


def _stop(signum: int, _frame: FrameType | None) -> None:
    # Before uvicorn takes the signals over and after it hands them back (it re-raises the one
    # that stopped it): a requested stop is a clean exit, not a death by signal.
    raise SystemExit(0)


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (env KEYCREW_HOST; default 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (env KEYCREW_PORT; default 8080).", min=1, max=65535)
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (env KEYCREW_WORKERS; default 1).", min=1)
    ] = None,
) -> None:
    """Migrate the database, create root on first boot, and serve HTTP until SIGTERM or Ctrl-C.

    On an empty database the root administrator is created and, unless
    KEYCREW_INITIAL_ROOT_PASSWORD / KEYCREW_INITIAL_ROOT_TOKEN are set, its generated
    password and token are printed once on stdout.
    """
    import uvicorn

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    settings = _settings(host=host, port=port, workers=workers)
    # Worker processes read their settings from the environment: let them see the same values.
    os.environ.update(
        KEYCREW_HOST=settings.host, KEYCREW_PORT=str(settings.port), KEYCREW_WORKERS=str(settings.workers)
    )
    if settings.workers > 1:
        _multiprocess_metrics(settings)
    _runtime(settings, banner=sys.stdout).engine.dispose()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        uvicorn.run(
            "keycrew.server:application",
            factory=True,
            # httptools, as uvicorn's default, with a cap on the request head (KEYCREW_HTTP_MAX_HEADER_SIZE).
            http="keycrew.server:HeadLimitedHttpTools",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            proxy_headers=True,
            forwarded_allow_ips=settings.forwarded_allow_ips,
            timeout_graceful_shutdown=10,
        )
    except SystemExit as exc:
        if exc.code not in (0, None):  # uvicorn exits 1 when it cannot bind or load the app
            _fail(f"the server could not start on {settings.host}:{settings.port} (see above)")
    typer.echo("keycrew: stopped", err=True)


def _multiprocess_metrics(settings: Settings) -> None:
    """Several workers share their metrics through files in DATA_DIR/metrics (or the directory
    PROMETHEUS_MULTIPROC_DIR already names), whose files are removed at start: a previous run's
    would otherwise be counted again."""
    from pathlib import Path

    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    directory = Path(given) if given else settings.data_dir / "metrics"
    if directory.is_dir():
        for entry in directory.glob("*.db"):  # prometheus-client's files, nothing else
            entry.unlink()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory.resolve())


@app.command()
def version() -> None:
    """Print keycrew's version and the GitLab API version it follows."""
    print(f"keycrew {__version__} (GitLab API v4, compatible with GitLab {GITLAB_COMPAT_VERSION})")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration to the configured database (KEYCREW_DATABASE_URL)."""
    settings = _settings()
    runtime = _runtime(settings)
    runtime.engine.dispose()
    print(f"database at head: {_safe_url(settings)}")


@db_app.command("check")
def db_check() -> None:
    """Apply pending migrations, then compare the schema with the models.

    Exits 1 and lists the differences when the migrations do not produce exactly the schema
    the models describe (a model changed without a migration, or the reverse).
    """
    from keycrew.migrations import diff

    settings = _settings()
    runtime = _runtime(settings)
    with _operator_errors(settings):
        changes = diff(runtime.engine)
    runtime.engine.dispose()
    if changes:
        for change in changes:
            print(change)
        _fail(f"{len(changes)} difference(s) between models and migrations")
    print("models and migrations agree")


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Option(help="Unique username.")],
    email: Annotated[str, typer.Option(help="Unique e-mail address.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the username).")] = None,
    password: Annotated[
        str | None,
        typer.Option(help="Password (min. 8 characters); omit for a token-only user. See --password-stdin."),
    ] = None,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from the first line of stdin (keeps it off ps)."
        ),
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="Make the user an administrator.")] = False,
) -> None:
    """Create a human user; prints "created user NAME (id N)"."""
    from keycrew.context import Actor
    from keycrew.errors import KeycrewError
    from keycrew.identity.users import create_user
    from keycrew.instance.settings import instance_settings

    if password_stdin:
        if password is not None:
            raise typer.BadParameter("give --password or --password-stdin, not both")
        password = sys.stdin.readline().rstrip("\r\n")
    settings = _settings()
    runtime = _runtime(settings, banner=sys.stderr)
    with _operator_errors(settings), runtime.sessions() as db, db.begin():
        try:
            ctx = runtime.ctx(db, Actor(user=None, via="system"))
            user = create_user(
                ctx,
                username=username,
                email=email,
                name=name or username,
                password=password,
                admin=admin,
                projects_limit=instance_settings(ctx).default_projects_limit,
            )
        except KeycrewError as exc:
            _fail_domain(exc)
        print(f"created user {user.username} (id {user.id})")


def _parse_scopes(value: str) -> list[str]:
    from keycrew.tokens.scopes import ALL_SCOPES

    scopes = [s.strip() for s in value.split(",") if s.strip()]
    if not scopes:
        raise typer.BadParameter("give at least one scope", param_hint="--scopes")
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise typer.BadParameter(
            f"unknown {', '.join(unknown)} (known: {', '.join(ALL_SCOPES)})", param_hint="--scopes"
        )
    return scopes


def _parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint="--expires-at") from None


@tokens_app.command("create")
def tokens_create(
    user: Annotated[str, typer.Option("--user", help="Username (or id) of the token's owner.")],
    scopes: Annotated[
        str, typer.Option(help="Comma-separated scopes, e.g. api,read_repository.", show_default=False)
    ],
    name: Annotated[str, typer.Option(help="Token name.")] = "cli token",
    expires_at: Annotated[
        str | None, typer.Option(help="Expiry date YYYY-MM-DD (default and max: 365 days ahead).")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text shown with the token.")] = None,
) -> None:
    """Issue a personal access token and print its value once.

    stdout carries the token value and nothing else, so that `TOKEN=$(keycrew tokens create ...)`
    works; a summary (id, owner, scopes, expiry) goes to stderr.
    """
    from sqlalchemy import select

    from keycrew.context import Actor
    from keycrew.errors import KeycrewError
    from keycrew.identity.models import User
    from keycrew.tokens.personal import create_personal_access_token
    from keycrew.tokens.scopes import ADMIN_SCOPES

    scope_list = _parse_scopes(scopes)
    expiry = _parse_date(expires_at)
    settings = _settings()
    runtime = _runtime(settings, banner=sys.stderr)
    with _operator_errors(settings), runtime.sessions() as db, db.begin():
        query = (
            select(User).where(User.id == int(user))
            if user.isdigit()
            else select(User).where(User.username_lower == user.lower())
        )
        owner = db.scalars(query).first()
        if owner is None:
            _fail(f"no user {user!r}")
        if not owner.admin and (reserved := [s for s in scope_list if s in ADMIN_SCOPES]):
            _fail(f"{', '.join(reserved)}: only an administrator's token may carry these scopes")
        try:
            issued = create_personal_access_token(
                runtime.ctx(db, Actor.system()),
                owner,
                name=name,
                scopes=scope_list,
                expires_at=expiry,
                description=description,
            )
        except KeycrewError as exc:
            _fail_domain(exc)
        expiry_text = issued.token.expires_at.isoformat() if issued.token.expires_at else "never"
        summary = (
            f"token id {issued.token.id} for {owner.username}, scopes {','.join(issued.token.scopes)}, "
            f"expires {expiry_text}"
        )
    print(issued.value, flush=True)
    typer.echo(summary, err=True)


@license_app.command("show")
def license_show() -> None:
    """Print the plan, paid seats and billable users."""
    from keycrew.access.seats import billable_users_count
    from keycrew.context import Actor
    from keycrew.instance.settings import instance_settings

    settings = _settings()
    runtime = _runtime(settings, banner=sys.stderr)
    with _operator_errors(settings), runtime.sessions() as db:
        ctx = runtime.ctx(db, Actor.system())
        row = instance_settings(ctx)
        seats = "unlimited" if row.seats is None else str(row.seats)
        print(f"plan {row.plan}, paid seats {seats}, billable users {billable_users_count(ctx)}")


@license_app.command("set")
def license_set(
    plan: Annotated[str, typer.Option(help="free, premium or ultimate.")],
    seats: Annotated[
        int | None,
        typer.Option(help="Paid seats (Premium: one service account per seat); omit for unlimited."),
    ] = None,
) -> None:
    """Set the plan and paid seats; service-account limits follow them at once."""
    from keycrew.context import Actor
    from keycrew.errors import KeycrewError
    from keycrew.instance.settings import set_license

    settings = _settings()
    runtime = _runtime(settings, banner=sys.stderr)
    with _operator_errors(settings), runtime.sessions() as db, db.begin():
        try:
            row = set_license(runtime.ctx(db, Actor.system()), plan.strip().lower(), seats)
        except KeycrewError as exc:
            _fail_domain(exc)
        seats_text = "unlimited" if row.seats is None else str(row.seats)
    print(f"license set: plan {plan.strip().lower()}, paid seats {seats_text}")


@jobs_app.command("list")
def jobs_list() -> None:
    """List the background jobs: name, schedule (cron, UTC), last run and its outcome."""
    from keycrew.automation.registry import JOBS
    from keycrew.automation.runs import last_runs

    settings = _settings()
    runtime = _runtime(settings)
    with _operator_errors(settings), runtime.sessions() as db:
        now = runtime.clock.now()
        last = last_runs(db, list(JOBS), now)
    rows = [("NAME", "SCHEDULE (UTC)", "LAST RUN", "OUTCOME")]
    for job in JOBS.values():
        run = last.get(job.name)
        if run is None:
            rows.append((job.name, job.schedule, "never", "-"))
            continue
        when = run.record.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        outcome = f"{run.status}: {run.summary}"
        if run.record.dry_run:
            outcome += " (dry run)"
        if run.record.error and run.status != "succeeded":
            outcome += f" ({run.record.error.splitlines()[0][:120]})"
        rows.append((job.name, job.schedule, when, outcome))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[3])


@jobs_app.command("run")
def jobs_run(
    name: Annotated[str, typer.Argument(help="The job to run; see `keycrew jobs list`.")],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Do the run's work in transactions that are rolled back: report what it would do.",
        ),
    ] = False,
) -> None:
    """Run one background job now and print what it did (or, with --dry-run, would do).

    The run takes the job's lease: if another node or process is running the job, nothing is
    done and the command exits 1. The run is recorded (trigger "cli") and shown on the admin page
    "Background jobs". Exit 0 when the run succeeded, 1 when it failed or could not start,
    2 for an unknown job.
    """
    from keycrew.automation.jobs import Progress
    from keycrew.automation.registry import JOBS
    from keycrew.automation.runs import CLI, SKIPPED, SUCCEEDED, run_job

    class Bar(Progress):
        """The run's progress as a bar on stderr, only when stderr is a terminal (so that the
        output stays clean for scripts)."""

        def __init__(self, label: str) -> None:
            self.label = label
            self.bar: Any = None
            self.shown = sys.stderr.isatty()

        def start(self, total: int | None) -> None:
            if self.shown and total:
                self.bar = typer.progressbar(length=total, label=self.label, file=sys.stderr)
                self.bar.__enter__()

        def advance(self, n: int = 1) -> None:
            if self.bar is not None:
                self.bar.update(n)

        def close(self) -> None:
            if self.bar is not None:
                self.bar.__exit__(None, None, None)
                self.bar = None

    if name not in JOBS:
        _fail(f"no job {name!r}; known jobs: {', '.join(JOBS)}", EXIT_USAGE)
    settings = _settings()
    runtime = _runtime(settings, banner=sys.stderr)
    bar = Bar(name)
    try:
        with _operator_errors(settings):
            result = run_job(
                runtime.sessions,
                runtime.instance,
                runtime.clock,
                name,
                trigger=CLI,
                dry_run=dry_run,
                progress=bar,
            )
    finally:
        bar.close()
    if result.status == SKIPPED:
        _fail(f"{result.reason}; nothing done")
    for line in result.notes:
        print(("would: " if dry_run else "") + line)
    suffix = " (dry run: nothing was changed)" if dry_run else ""
    print(f"{name}: {result.summary}{suffix}")
    if result.status != SUCCEEDED:
        _fail(f"run {result.run_id} {result.status}: {result.error}")


def _yaml_string(value: str) -> str:
    import json

    return json.dumps(value)  # a JSON string is a YAML string


@registry_app.command("config")
def registry_config() -> None:
    """Print the auth section of docker-registry's config.yml for this keycrew (creating the
    signing key and its certificate if they do not exist yet)."""
    import datetime as dt

    from keycrew.registry import keys

    settings = _settings()
    certificate = settings.registry_certificate_path.resolve()
    with _operator_errors(settings):
        store = keys.key_store(settings.registry_key_path, certificate)
        try:
            signing = store.current(dt.datetime.now(dt.UTC))
        except ValueError as exc:
            _fail(str(exc))
    print("# docker-registry config.yml: token authentication against keycrew")
    print(f"# signing key {store.key_path} (kid {signing.kid})")
    print("auth:")
    print("  token:")
    print(f"    realm: {_yaml_string(settings.external_url + '/jwt/auth')}")
    print(f"    service: {_yaml_string(settings.registry_service)}")
    print(f"    issuer: {_yaml_string(settings.registry_issuer)}")
    print(f"    rootcertbundle: {_yaml_string(str(certificate))}")


@registry_app.command("rotate-key")
def registry_rotate_key(
    activate: Annotated[
        bool, typer.Option("--activate", help="Step 2: sign with the key prepared by step 1.")
    ] = False,
) -> None:
    """Rotate the token signing key in two steps. Step 1 (no option) creates the next key and adds
    its certificate to the bundle; restart docker-registry so that it reads the bundle, then run
    step 2 (--activate)."""
    import datetime as dt

    from keycrew.registry import keys

    settings = _settings()
    with _operator_errors(settings):
        if activate:
            if not keys.activate_rotation(settings.registry_key_path):
                _fail("no rotation prepared: run `keycrew registry rotate-key` first")
            print(f"signing with the new key {settings.registry_key_path}")
            return
        try:
            kid = keys.prepare_rotation(
                settings.registry_key_path, settings.registry_certificate_path, dt.datetime.now(dt.UTC)
            )
        except ValueError as exc:
            _fail(str(exc))
    print(f"next key {keys.next_key_path(settings.registry_key_path)} (kid {kid})")
    typer.echo(
        f"{settings.registry_certificate_path} now holds its certificate beside the current one: "
        "restart docker-registry, then run `keycrew registry rotate-key --activate`",
        err=True,
    )


@report_app.command("tokens")
def report_tokens(
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table (default), json or csv.", show_default=False)
    ] = "table",
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            "-c",
            help="Only this check (repeatable): no_expiry, expiring_unnotified, over_scoped, shared, "
            "automation_like, bot_owner, unused.",
        ),
    ] = None,
) -> None:
    """The token-hygiene report: every live token checked against the token guidelines.

    Checks: tokens without an expiry; expiring within 7 days with nobody to notify; scopes wider
    than the recorded requests needed; used from more than 5 IPs in 30 days; humans' tokens used
    like automation; bots with the Owner role; unused for 30 days. Each finding names the token,
    its owner and a suggested fix. Read-only; exits 0 whatever it finds (see docs/token-hygiene.md).
    """
    import json

    from keycrew.automation.hygiene import CHECKS, to_csv, token_hygiene
    from keycrew.context import Actor

    fmt = output_format.strip().lower()
    if fmt not in ("table", "json", "csv"):
        _fail(f"unknown format {output_format!r}: use table, json or csv", EXIT_USAGE)
    unknown = [c for c in check or [] if c not in CHECKS]
    if unknown:
        _fail(f"unknown check {unknown[0]!r}: use one of {', '.join(CHECKS)}", EXIT_USAGE)
    settings = _settings()
    runtime = _runtime(settings)
    with _operator_errors(settings), runtime.sessions() as db:
        findings = token_hygiene(runtime.ctx(db, Actor.system()), check or None)
    if fmt == "json":
        print(json.dumps([f.as_dict() for f in findings], indent=2))
        return
    if fmt == "csv":
        sys.stdout.write(to_csv(findings))
        return
    columns = ("check", "severity", "token_id", "token_name", "token_kind", "owner_username", "resource")
    rows = [tuple(c.upper() for c in (*columns, "fix"))]
    for finding in findings:
        values = finding.as_dict()
        rows.append((*("-" if values[c] is None else str(values[c]) for c in columns), finding.fix))
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    typer.echo(f"{len(findings)} finding(s)", err=True)


@mail_app.command("test")
def mail_test(address: Annotated[str, typer.Argument(help="Where to send the test e-mail.")]) -> None:
    """Write a test e-mail to the outbox and deliver it now with this environment's SMTP settings."""
    from keycrew.context import Actor
    from keycrew.mail.delivery import DeliveryWorker
    from keycrew.outbox.models import SENT, OutboxMessage
    from keycrew.outbox.service import enqueue

    address = address.strip()
    if "@" not in address or any(c.isspace() or ord(c) < 32 for c in address) or len(address) > 255:
        _fail(f"not an e-mail address: {address!r}", EXIT_USAGE)
    settings = _settings()
    if not settings.smtp_host:
        _fail("outgoing e-mail is not configured: set KEYCREW_SMTP_HOST (and the other SMTP settings)")
    runtime = _runtime(settings, banner=sys.stderr)
    with _operator_errors(settings):
        with runtime.sessions() as db, db.begin():
            row = enqueue(
                runtime.ctx(db, Actor.system()),
                to_address=address,
                subject="keycrew test e-mail",
                template="test_email",
                context={"note": "Sent with `keycrew mail test`."},
            )
            assert row is not None
            db.flush()
            message_id = row.id
        DeliveryWorker(runtime.sessions, settings, runtime.clock).run_once(only=[message_id])
        with runtime.sessions() as db:
            sent = db.get(OutboxMessage, message_id)
            assert sent is not None
    where = f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_tls})"
    if sent.status != SENT:
        _fail(f"not sent through {where}: {sent.last_error}; message {message_id} stays in the outbox")
    print(f"sent message {message_id} to {address} through {where}")


def main() -> None:
    # What keycrew creates is its own: the data directory's files, git's and SQLite's included, are
    # readable by its user only (files that are meant to be public set their mode explicitly).
    os.umask(0o077)
    app()


if __name__ == "__main__":
    main()
