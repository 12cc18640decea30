"""datamonfs serve: the HTTP API and web UI; datamonfs token create: HS256 tokens for it.

The server and everything it does are in datamonfs/serve/ (docs/SERVE.md); here only
the options are read and checked.
"""

from __future__ import annotations

import sys

import click

from ..errors import ConfigError
from .common import load_config, parse_duration


@click.command("serve", short_help="Serve repos over HTTP: a JSON API and a web UI.")
@click.option("--bind", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT",
              help="Where to listen (port 0: any free port; the URL is printed).")
@click.option("--jwt-secret-file", default=None, metavar="FILE",
              help="Take HS256 tokens signed with the secret in FILE (32 bytes or more).")
@click.option("--jwt-jwks-file", default=None, metavar="FILE",
              help="Take RS256/ES256 tokens signed by a key of the JWKS in FILE.")
@click.option("--jwt-issuer", default="datamonfs", show_default=True,
              help="The iss claim tokens must carry.")
@click.option("--jwt-audience", default="datamonfs", show_default=True,
              help="The aud claim tokens must carry.")
@click.option("--auth", "auth", type=click.Choice(["jwt", "none"]), default=None,
              help="none: no tokens, everyone may read and write (loopback binds only); "
                   "default: jwt when a key file is given, else none.")
def serve(bind: str, jwt_secret_file: str | None, jwt_jwks_file: str | None, jwt_issuer: str,
          jwt_audience: str, auth: str | None) -> None:
    """Serve the store of the config over HTTP until interrupted: the API under
    /api/v1 (its OpenAPI document at /api/v1/openapi.json) and a web UI at /.

    Tokens travel as 'Authorization: Bearer TOKEN' and carry scopes read:REPO,
    write:REPO, read:* or write:* in their scope claim. Prints the URL on stdout
    once listening.
    """
    from ..serve import server

    if jwt_secret_file and jwt_jwks_file:
        raise click.UsageError("give --jwt-secret-file or --jwt-jwks-file, not both")
    has_key = bool(jwt_secret_file or jwt_jwks_file)
    auth = auth or ("jwt" if has_key else "none")
    if auth == "jwt" and not has_key:
        raise click.UsageError("--auth jwt needs --jwt-secret-file or --jwt-jwks-file")
    if auth == "none" and has_key:
        raise click.UsageError("--auth none takes no key file")
    host, _ = server.parse_bind(bind)
    if auth == "none" and not server.is_loopback(host):
        raise click.UsageError(f"--bind {bind}: a server without authentication listens on "
                               "loopback only (127.0.0.1, ::1, localhost); give "
                               "--jwt-secret-file or --jwt-jwks-file")
    from ..serve.app import create_app
    from ..serve.auth import Verifier
    from ..serve.engine import Engine

    verifier = None
    if jwt_secret_file:
        verifier = Verifier.from_secret_file(jwt_secret_file, jwt_issuer, jwt_audience)
    elif jwt_jwks_file:
        verifier = Verifier.from_jwks_file(jwt_jwks_file, jwt_issuer, jwt_audience)
    cfg = load_config()
    try:
        author = cfg.author
    except ConfigError:
        author = None  # no config: writes need tokens with name and email claims
    engine = Engine.open(cfg)

    def ready(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()
        click.echo(f"datamonfs: serving {cfg.store_spec().url} on {url} "
                   f"({'JWT' if verifier else 'no authentication'}); Ctrl-C stops", err=True)

    try:
        server.serve(create_app(engine, verifier, author), bind, ready)
    finally:
        engine.close()


@click.group("token")
def token() -> None:
    """Tokens for datamonfs serve."""


@token.command("create")
@click.option("--secret-file", required=True, metavar="FILE",
              help="The HS256 secret the server takes (--jwt-secret-file).")
@click.option("--scope", "scopes", multiple=True, required=True, metavar="SCOPE",
              help="read:REPO, write:REPO, read:* or write:* (repeatable).")
@click.option("--ttl", default="1h", show_default=True, metavar="DURATION",
              help="How long the token is valid (30s, 5m, 2h, 1d).")
@click.option("--subject", default=None, help="The sub claim: who the token is for.")
@click.option("--issuer", default="datamonfs", show_default=True, help="The iss claim.")
@click.option("--audience", default="datamonfs", show_default=True, help="The aud claim.")
def token_create(secret_file: str, scopes: tuple[str, ...], ttl: str, subject: str | None,
                 issuer: str, audience: str) -> None:
    """Print an HS256 token for a small set-up (for more, use your identity provider
    and a JWKS)."""
    from ..serve.auth import check_scope_text, create_token, read_secret

    seconds = parse_duration(ttl)
    if seconds <= 0:
        raise click.BadParameter("the ttl must be positive", param_hint="--ttl")
    words = [check_scope_text(w) for s in scopes for w in s.split()]
    click.echo(create_token(read_secret(secret_file), words, int(seconds), subject, issuer,
                            audience))
