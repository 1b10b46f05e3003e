"""``boxoffice dev|serve|worker|migrate|seed|simulate``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from shared.config import MIN_SECRET_CHARS, CommonSettings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from boxoffice.services import SERVICES
    from svckit.http_server import HTTP_PROTOCOL

    spec = SERVICES[args.service]
    settings = CommonSettings()
    weak = settings.weak_secrets()
    if weak and not settings.allow_insecure_defaults:
        # The defaults are public: with them anyone can mint access and admission tokens
        # (and skip the waiting room) or call the admin API.
        print(
            f"refusing to start: {' and '.join(weak)} {'is' if len(weak) == 1 else 'are'} "
            "a public default or shorter than "
            f'{MIN_SECRET_CHARS} characters. Set a random value (e.g. `python -c "import '
            'secrets; print(secrets.token_urlsafe(48))"`), or, for a local try-out only, '
            "BOXOFFICE_ALLOW_INSECURE_DEFAULTS=true. `boxoffice dev` makes its own secrets.",
            file=sys.stderr,
        )
        return 2
    # A served process freezes its start-up heap (svckit/gc_tuning.py); the environment
    # carries the choice to uvicorn's worker processes too.
    os.environ.setdefault("BOXOFFICE_GC_FREEZE", "true")
    uvicorn.run(
        spec.factory,
        factory=True,
        host=args.host,
        port=args.port or spec.port,
        workers=args.workers,
        loop=settings.event_loop,
        http=HTTP_PROTOCOL,  # httptools, one write per response
        # uvicorn would otherwise rewrite the client address from X-Forwarded-For sent from
        # 127.0.0.1 before the gateway sees it; only BOXOFFICE_TRUSTED_PROXIES may vouch for
        # a forwarded address (the gateway's own resolver reads the header).
        proxy_headers=False,
        forwarded_allow_ips="",
        access_log=False,  # the services write their own structured access log
        log_level=args.log_level,
    )
    return 0


def _worker(args: argparse.Namespace) -> int:
    from boxoffice.services import WORKER_MODULE

    module = importlib.import_module(WORKER_MODULE)
    return int(module.main(args.rest))


def _migrate(args: argparse.Namespace) -> int:
    from boxoffice.db import migrate

    url = args.url or CommonSettings().resolved_database_url()
    migrate(url, args.revision)
    print(f"migrated to {args.revision}")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from boxoffice.seed import seed_demo

    if not args.demo:
        print("nothing to seed: pass --demo", file=sys.stderr)
        return 2
    settings = CommonSettings()
    added = seed_demo(
        args.url or settings.resolved_database_url(),
        max_active=settings.queue_default_max_active,
        admit_per_second=settings.queue_default_admit_per_second,
    )
    print(f"demo catalog: {added} performance(s) added")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from boxoffice.simulate.options import from_args
    from boxoffice.simulate.runner import run  # heavy imports (httpx, rich) only when used

    return run(from_args(args))


def _dev(args: argparse.Namespace) -> int:
    from boxoffice.dev import run_dev

    return run_dev(host=args.host)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    parser = argparse.ArgumentParser(prog="boxoffice", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dev", help="run the whole system on this machine (embedded defaults)")
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=_dev)

    p = sub.add_parser("serve", help="serve one service")
    p.add_argument("service", choices=["gateway", "api", "ticket"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="warning")
    p.set_defaults(func=_serve)

    # The worker parses its own options (`boxoffice worker --help`); main() hands them over.
    p = sub.add_parser("worker", help="drain reservation events into the database", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=_worker)

    p = sub.add_parser("migrate", help="upgrade the database schema")
    p.add_argument("--url", default=None)
    p.add_argument("--revision", default="head")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("simulate", help="an on-sale crowd against the system, with a report")
    from boxoffice.simulate.options import add_arguments  # standard library only: cheap

    add_arguments(p)
    p.set_defaults(func=_simulate)

    p = sub.add_parser("seed", help="load catalog data")
    p.add_argument("--demo", action="store_true", help="the demo catalog (idempotent)")
    p.add_argument("--url", default=None)
    p.set_defaults(func=_seed)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``boxoffice`` console script."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        # argparse's REMAINDER drops a leading option (`worker --batch-size 5`), so the
        # worker's arguments bypass the top-level parser entirely.
        return _worker(argparse.Namespace(rest=argv[1:]))
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
