"""`interpsy serve`: gunicorn with N workers, or Flask's dev server with --debug."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from experiments.db import Database
from experiments.errors import InterpsyError
from server.config import ServerConfig
from server.images import ImageStore, nginx_locations, upstream_address


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64),
              help="gunicorn worker processes.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Threads per worker (gthread when > 1).")
@click.option("--debug", is_flag=True, help="Flask's dev server with reload; no secret key needed.")
@click.option("--skip-prepare", is_flag=True,
              help="Do not make missing image derivatives before serving (they are then made "
                   "on first request).")
@click.option("--database", "database_url", envvar="INTERPSY_DATABASE_URL", default=None,
              help="SQLAlchemy URL (default: INTERPSY_DATABASE_URL or SQLite under INTERPSY_HOME).")
@click.option("--nginx-config", "nginx_config", default=None,
              type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write nginx location blocks to this file: the proxy serves the prepared "
                   "images from disk (/img/) and passes everything else to gunicorn.")
def serve(host: str, port: int, workers: int, threads: int, debug: bool, skip_prepare: bool,
          database_url: str | None, nginx_config: Path | None) -> None:
    """Run the crowdsourcing web server (participant pages, JSON API, admin)."""
    config = ServerConfig.from_env(database_url=database_url, debug=debug).resolved()
    db = Database(config.database_url)
    try:
        db.require_current()  # workers never migrate; say so once, clearly, before forking
        store = ImageStore(db, config.image_cache, config.image_format, config.image_quality)
        if not skip_prepare:
            # Encoding on first request would slow the first participants' image loads; the
            # links let a proxy serve them from disk (png: links to the masters).
            for key, n in store.prepare_open(progress=True).items():
                click.echo(f"{key}: {n} images ready as {config.image_format} in {config.image_cache}")
                if store.unlinked.get(key):
                    click.echo(f"{key}: {len(store.unlinked[key])} image ids are not plain paths "
                               f"(e.g. {store.unlinked[key][0]!r}); the app serves those")
        if nginx_config is not None:
            nginx_config.write_text(nginx_locations(store.public_dir, upstream_address(host, port),
                                                    store.mimetype))
            click.echo(f"nginx location blocks written to {nginx_config}")
    finally:
        db.dispose()
    os.environ["INTERPSY_DATABASE_URL"] = config.database_url or ""
    if debug:
        from server.app import create_app

        os.environ["INTERPSY_DEBUG"] = "1"
        app = create_app(config)
        click.echo(f"debug server on http://{host}:{port}/ (database {db.describe()})")
        # No Werkzeug debugger: its console must never be reachable, even in debug mode.
        app.run(host=host, port=port, debug=True, use_debugger=False, use_reloader=False,
                threaded=True)
        return
    gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or shutil.which("gunicorn")
    if gunicorn is None:
        raise InterpsyError("gunicorn is not installed; pip install gunicorn (or use --debug)")
    args = [gunicorn, "--bind", f"{host}:{port}", "--workers", str(workers),
            "--access-logfile", "-", "--graceful-timeout", "20", "--timeout", "60",
            "--logger-class", "server.gunicorn_logger.RedactingLogger"]
    if threads > 1:
        args += ["--worker-class", "gthread", "--threads", str(threads)]
    click.echo(f"gunicorn on http://{host}:{port}/ with {workers} workers "
               f"(database {db.describe()})")
    sys.stdout.flush()
    os.execv(gunicorn, [*args, "server.wsgi:app"])
