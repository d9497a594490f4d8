"""`api`: serve the admin HTTP API with uvicorn."""

from __future__ import annotations

from backup_pipeline.cli.output import Result

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def register(sub, common) -> None:
    p = sub.add_parser("api", parents=[common],
                       help="serve the admin HTTP API (needs ADMIN_API_TOKEN)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on ({DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to listen on ({DEFAULT_PORT})")
    p.set_defaults(handler=run_api)


def run_api(args) -> Result:
    import uvicorn

    from backup_pipeline.api import create_app

    app = create_app()  # refuses to start (one line) without a token or a migrated catalog
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", proxy_headers=False,
                server_header=False)
    return Result({"served": f"http://{args.host}:{args.port}", "stopped": True},
                  "admin API stopped")
