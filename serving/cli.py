"""`leadscore serve` and `leadscore keys ...`, mounted on the `leadscore` app by `leadscore.cli`."""

from __future__ import annotations

import tempfile

import typer
from rich.console import Console
from rich.table import Table

keys_app = typer.Typer(
    help="Create, list and revoke API keys (stored hashed; a key is shown once).",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


def _engine(database_url: str | None):
    from serving.config import Settings
    from serving.db import make_engine, upgrade_database

    url = database_url or Settings().database_url
    try:
        upgrade_database(url)
    except Exception as error:
        err_console.print(
            f"[red]error:[/red] {cannot_open_database(url, error)}\n"
            "Check LEADSCORE_DATABASE_URL (or --database-url) and that the database server is running.",
            highlight=False,
        )
        raise typer.Exit(2) from None
    return make_engine(url)


def cannot_open_database(url: str, error: BaseException) -> str:
    """The one line saying a database cannot be opened: its URL and the driver's reason, the
    password masked in both (a driver may quote the URL it was given)."""
    from rich.markup import escape

    from serving.redact import describe_database_error, redact_url

    return escape(f"cannot open the database {redact_url(url)!r}: {describe_database_error(error)}")


DatabaseOption = typer.Option(
    None,
    "--database-url",
    help="SQLAlchemy URL (default: LEADSCORE_DATABASE_URL or sqlite:///leadscore.db).",
)


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="Who uses the key, e.g. `hubspot`."),
    role: str = typer.Option("scorer", "--role", "-r", help="scorer, ops or admin."),
    database_url: str | None = DatabaseOption,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from serving.auth import KeyCommandError, create_key

    engine = _engine(database_url)
    try:
        key = create_key(engine, name, role)
    except KeyCommandError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    err_console.print(
        f"Created key [bold]{name}[/bold] with role {role}. Store it now; it is not shown again:"
    )
    typer.echo(key)


@keys_app.command("list")
def keys_list(
    show_revoked: bool = typer.Option(
        True, "--revoked/--active-only", help="Include revoked keys."
    ),
    database_url: str | None = DatabaseOption,
) -> None:
    """List keys: name, role, first characters, created and revoked times."""
    from serving.auth import list_keys

    engine = _engine(database_url)
    records = list_keys(engine, include_revoked=show_revoked)
    engine.dispose()
    table = Table("name", "role", "key starts", "created (UTC)", "revoked (UTC)")
    for r in records:
        table.add_row(
            r.name,
            r.role,
            r.key_prefix + "...",
            f"{r.created_at:%Y-%m-%d %H:%M}",
            f"{r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "",
        )
    if not records:
        err_console.print(
            "No keys yet: create one with `leadscore keys create NAME --role scorer`."
        )
        return
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    name: str = typer.Argument(..., help="Name of the key to revoke."),
    database_url: str | None = DatabaseOption,
) -> None:
    """Revoke a key; running services refuse it within about a second."""
    from serving.auth import KeyCommandError, revoke_key

    engine = _engine(database_url)
    try:
        record = revoke_key(engine, name)
    except KeyCommandError as error:
        err_console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None
    finally:
        engine.dispose()
    err_console.print(
        f"Revoked key [bold]{record.name}[/bold] ({record.role}) at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC."
    )


def serve(
    host: str | None = typer.Option(
        None, help="Interface to bind (default LEADSCORE_HOST or 127.0.0.1)."
    ),
    port: int | None = typer.Option(None, help="Port (default LEADSCORE_PORT or 8000)."),
    workers: int | None = typer.Option(
        None, help="Worker processes (default LEADSCORE_WORKERS or 1)."
    ),
    access_log: bool = typer.Option(
        False, "--access-log/--no-access-log", help="Log every request line."
    ),
    log_format: str | None = typer.Option(
        None,
        help="Log lines as text or JSON, each with a timestamp and the request id "
        "(default LEADSCORE_LOG_FORMAT or text).",
    ),
) -> None:
    """Serve the scoring API (uvicorn with uvloop and httptools)."""
    import uvicorn
    from pydantic import ValidationError
    from rich.markup import escape

    from serving import boot
    from serving.config import Settings, export_for_workers
    from serving.logs import logging_config

    try:
        settings = Settings()
    except ValidationError as error:
        err_console.print(f"[red]error:[/red] invalid LEADSCORE_* settings:\n{error}")
        raise typer.Exit(2) from None
    if log_format not in (None, "text", "json"):
        err_console.print(f"[red]error:[/red] --log-format {log_format!r}: expected text or json")
        raise typer.Exit(2)
    options = {"host": host, "port": port, "workers": workers, "log_format": log_format}
    settings = settings.model_copy(update={k: v for k, v in options.items() if v})
    # Whatever the parent decides below reaches the workers as settings (export_for_workers).
    decided: dict[str, object] = {}
    if settings.workers > 1:
        # Migrate and bootstrap keys once here, not racing in every worker.
        from serving.auth import ensure_keys

        engine = _engine(settings.database_url)  # migrates, or says why it cannot
        if settings.bootstrap_keys():
            ensure_keys(engine, settings.bootstrap_keys())
        engine.dispose()
        decided.update(auto_migrate=False, api_keys_bootstrap="")
        if settings.model_poll_seconds == 0:
            # An admin reload reaches one worker; the others follow the alias by polling.
            decided["model_poll_seconds"] = 30.0
            err_console.print(
                f"{settings.workers} workers: each checks the model alias every 30 s "
                "(set LEADSCORE_MODEL_POLL_SECONDS to change)"
            )
        if not settings.prometheus_multiproc_dir:
            decided["prometheus_multiproc_dir"] = tempfile.mkdtemp(prefix="leadscore-metrics-")
    # One worker migrates in the background of its own start (serving/boot.py): the port opens
    # first, so a container health check does not wait for imports and migrations.
    settings = settings.model_copy(update=decided)
    export_for_workers(settings)
    # The service's own messages (model loaded or failed, score-log errors) and uvicorn's, each
    # line with a timestamp and the request id, as text or JSON.
    config = uvicorn.Config(
        "serving.boot:create_booting_app",
        log_config=logging_config(settings.log_format),
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools with a request-header time limit (slowloris); bodies: ServiceMiddleware
        http="serving.http:HeaderTimeoutProtocol",
        timeout_keep_alive=settings.keep_alive_seconds,
        access_log=access_log,
        log_level="info",
        timeout_graceful_shutdown=30,
    )
    server = uvicorn.Server(config)
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        # A service that cannot start stops this server; the reason is printed below.
        boot.stop_server = lambda: setattr(server, "should_exit", True)
        server.run()
        if not server.started:
            raise typer.Exit(3)  # uvicorn could not bind or start (it said why)
    reason = boot.failure()
    if reason is not None:
        err_console.print(f"[red]error:[/red] the service could not start: {escape(reason)}")
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    """Add `serve` and `keys` to the top-level app."""
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")
