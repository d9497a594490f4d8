"""`backup-pipeline`: the operator's command line. Every command takes --json."""

from __future__ import annotations

import argparse
import sys
import traceback

from backup_pipeline.cli import (
    api,
    backups,
    catalog,
    drill,
    health,
    offsite,
    restore,
    schedules,
    settings,
)
from backup_pipeline.cli.output import emit
from backup_pipeline.errors import BackupPipelineError
from backup_pipeline.postgres import redact

COMMAND_MODULES = [catalog, backups, schedules, restore, drill, settings, offsite, health, api]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backup-pipeline",
        description="Backup and restore of the application database and documents.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    # the same options after the command; SUPPRESS keeps them from resetting the ones before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON object on stdout")
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
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
            print(redact(traceback.format_exc()), end="", file=sys.stderr)
        print(f"backup-pipeline: error: {redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("backup-pipeline: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line
        if args.debug:
            print(redact(traceback.format_exc()), end="", file=sys.stderr)
        message = redact(" ".join(str(exc).split())) or type(exc).__name__
        print(f"backup-pipeline: error: {type(exc).__name__}: {message} (run with --debug "
              "for details)", file=sys.stderr)
        return 1
    try:
        return emit(result, as_json=args.json)
    except BrokenPipeError:  # `backup-pipeline list | head`: the reader left, nothing to say
        sys.stdout = None
        return 0


if __name__ == "__main__":
    sys.exit(main())
