"""`poller run | validate | demo | loadgen | functionhost | bench` — one entry point."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from poller.loop import run as run_loop

EXIT_CONFIG = 2


def _load(path: str) -> Any:
    from poller.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def cmd_validate(args: argparse.Namespace) -> int:
    from poller.config import summary

    config = _load(args.config)
    print(summary(config))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from poller.awsjson import NoCredentialsError
    from poller.observability.logging import configure
    from poller.service import Service

    config = _load(args.config)
    configure(args.log_level or config.log_level, config.log_format)
    try:
        run_loop(Service(config).run())
    except NoCredentialsError as exc:
        print(f"poller: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from poller.demo import run_demo

    return int(run_loop(run_demo(records=args.records)))


def cmd_bench(args: argparse.Namespace) -> int:
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "bench" / "__init__.py").exists() and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))  # the console script's path lacks the checkout
    try:
        module = importlib.import_module(f"bench.{args.name}")
    except ModuleNotFoundError as e:
        if e.name not in ("bench", f"bench.{args.name}"):
            raise
        print(f"unknown benchmark {args.name!r} (benchmarks run from a source checkout: "
              "bench/ next to poller/)", file=sys.stderr)
        return EXIT_CONFIG
    main = module.main
    return int(main(args.rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="poller", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the mappings of a config file until SIGTERM")
    p.add_argument("-c", "--config", required=True)
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check a config file; exit 2 listing every problem")
    p.add_argument("-c", "--config", required=True)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", help="end-to-end demo on embedded local servers")
    p.add_argument("--records", type=int, default=1000)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="benchmarks (from a source checkout)")
    p.add_argument("name")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)

    from poller import functionhost, loadgen

    loadgen.add_parser(sub)
    functionhost.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
