"""`backup-pipeline`: the operator's command line. Every command takes --json."""

from __future__ import annotations

import argparse
import sys
import traceback

from backup_pipeline.cli import backups, catalog, restore
from backup_pipeline.cli.output import emit
from backup_pipeline.errors import BackupPipelineError

COMMAND_MODULES = [catalog, backups, restore]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser = argparse.ArgumentParser(
        prog="backup-pipeline", parents=[common],
        description="Backup and restore of the application database and documents.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except BackupPipelineError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"backup-pipeline: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("backup-pipeline: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line
        if args.debug:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"backup-pipeline: error: {type(exc).__name__}: {message} (run with --debug "
              "for details)", file=sys.stderr)
        return 1
    return emit(result, as_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
