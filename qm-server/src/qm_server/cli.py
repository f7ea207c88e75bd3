"""``qm serve``: the server on uvicorn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from qm_server.service import check_backends
from qm_server.settings import ServerSettings, SettingsError, check_listen, load_token
from quartermaster_engine.cli.common import reported
from quartermaster_engine.config import EngineConfig
from quartermaster_engine.redaction import redact_tree

#: How long a stop waits for open requests: event streams of paused flows never end
#: by themselves, so after this they are closed.
GRACEFUL_SHUTDOWN_SECONDS = 3


@click.command("serve")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Engine config (store, dispatcher, sinks); default: $QM_CONFIG, ./qm.toml, ...",
)
@click.option(
    "--graphs",
    "graphs_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    required=True,
    help="Folder of graph files (NAME.yaml, NAME.yml, NAME.json); graphs are asked for by NAME.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File holding the bearer token (default: $QM_SERVER_TOKEN).",
)
@click.option("--allow-inline-graphs", is_flag=True, help="Allow POST /api/flows with graph_spec.")
@click.option(
    "--max-body-bytes", type=int, default=1024 * 1024, show_default=True, help="Request size limit."
)
def serve_command(
    config_path: Path | None,
    graphs_dir: Path,
    host: str,
    port: int,
    token_file: Path | None,
    allow_inline_graphs: bool,
    max_body_bytes: int,
) -> None:
    """Serve the HTTP API (OpenAPI schema at /openapi.json) and the web page at /.

    Every route but /api/health needs the bearer token when one is set; a
    non-loopback --host needs one."""
    import uvicorn

    from qm_server.app import create_app

    try:
        token = load_token(token_file)
        check_listen(host, token)
        config = EngineConfig.load(config_path)
        settings = ServerSettings(
            graphs_dir=graphs_dir,
            config=config,
            token=token,
            allow_inline_graphs=allow_inline_graphs,
            max_body_bytes=max_body_bytes,
        )
        app = create_app(settings)
    except (SettingsError, ValueError, LookupError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise click.exceptions.Exit(1) from None
    with reported():
        asyncio.run(check_backends(config))
    auth = "token required" if token else "no token (loopback only)"
    shown = redact_tree(config.store.settings, "store")
    store = " ".join(f"{key}={value}" for key, value in shown.items())
    click.echo(f"qm-server on http://{host}:{port}/ ({auth})", err=True)
    click.echo(f"store {config.store.name} {store}".rstrip(), err=True)
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
