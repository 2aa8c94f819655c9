"""The ``terafeat`` command: run flows from the shell."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from flows.parameters import validation_message
from flows.registry import FLOWS, load_flow


def _parse_assignment(text: str) -> tuple[str, object]:
    """``key=value`` with value parsed as JSON when it is JSON, else kept as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (argparse's names the valid choices), not usage + error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="terafeat", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a flow once, here, and print where its report is")
    run.add_argument("flow", choices=sorted(FLOWS))
    run.add_argument("--set", dest="overrides", action="append", type=_parse_assignment, default=[],
                     metavar="KEY=VALUE", help="a flow parameter (repeatable), e.g. --set max_iter=100")
    run.add_argument("--output-root", help="folder for reports (default: ./reports)")
    run.add_argument("--dask-address", metavar="tcp://HOST:PORT",
                     help="train on this Dask scheduler (sets backend=dask; "
                          "--set backend=dask alone starts a local cluster)")
    show = commands.add_parser("params", help="print a flow's parameters: type, default, "
                                              "bounds and description")
    show.add_argument("flow", choices=sorted(FLOWS))
    show.add_argument("--json", action="store_true", help="as JSON rows")
    debug = commands.add_parser("task", allow_abbrev=False,
                                help="run one stage alone on a past run's inputs, "
                                     "without a Prefect server, into a new folder")
    debug.add_argument("stage", help="a stage of the run's flow (its task's name, e.g. whiten, "
                       "train-rica; a bad name lists them); parameters as --set KEY=VALUE or "
                       "--KEY VALUE")
    debug.add_argument("--run", type=Path, required=True, help="a past run folder")
    debug.add_argument("--set", dest="overrides", action="append", type=_parse_assignment,
                       default=[], metavar="KEY=VALUE", help="override one of the run's parameters")
    debug.add_argument("--output-root", type=Path, default=Path("reports"),
                       help="the stage writes to <output-root>/tasks/<stage>/<time>-<run>/")
    runs = commands.add_parser("runs", help="list past runs with their headline numbers")
    runs.add_argument("--output-root", type=Path, default=Path("reports"))
    runs.add_argument("--flow", choices=sorted(FLOWS))
    data = commands.add_parser("data", help="the data sets: list them, fetch (download, verify, "
                                             "unpack) one, or verify its checksums again")
    data.add_argument("action", choices=("list", "fetch", "verify"))
    data.add_argument("names", nargs="*", metavar="NAME", help="data sets (list: default all)")
    data.add_argument("--root", type=Path, default=Path("data"),
                      help="data root: set NAME lives in <root>/NAME (default: ./data)")
    data.add_argument("--remote", action="store_true",
                      help="list: ask the servers for the sizes of sets not downloaded")
    report = commands.add_parser("report", help="two runs side by side as one HTML page")
    report.add_argument("--compare", nargs=2, type=Path, required=True, metavar="RUN",
                        help="two run folders (each with results.json)")
    report.add_argument("--output-root", type=Path, default=Path("reports"),
                        help="the page goes to <output-root>/compare/<time>-<A>-vs-<B>/index.html")
    serve = commands.add_parser("serve", help="serve every flow as a deployment on the Prefect "
                                              "server of PREFECT_API_URL, with configured schedules")
    serve.add_argument("--config", type=Path, help="schedules file (default: ./terafeat.toml, "
                                                   "else [tool.terafeat] of ./pyproject.toml)")
    serve.add_argument("--name", help="deployment name, FLOW/NAME (default: [serve] name of "
                                      "the config, else this folder's name)")
    _add_cache_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "task":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:  # terafeat task whiten --run R --whitening-eps 0.01: flow parameters
        args.overrides += _option_overrides(parser, extra)
    # Prefect's server sends telemetry, which fails without a network; a
    # fresh database's first start (migrations) can outlast the default 20 s.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # the core logs through `logging` (e.g. the Dask dashboard link, worker recoveries):
    # let Prefect show those records in the run's log
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "terafeat")
    if args.command == "runs":
        from runs.history import format_runs, list_runs
        print(format_runs(list_runs(args.output_root, args.flow)))
        return 0
    if args.command == "task":
        return _run_task(args)
    if args.command == "cache":
        return _cache_command(args)
    if args.command == "report":
        return _compare(*args.compare, args.output_root)
    if args.command == "data":
        from flows.data import data_command
        return data_command(args.action, args.names, args.root, args.remote)
    if args.command == "serve":
        from flows.deployments import serve
        try:
            serve(args.config, args.name)
        except (OSError, ValueError) as error:
            print(f"terafeat: {error}", file=sys.stderr)
            return 2
        return 0
    flow_function, plan = load_flow(args.flow)
    if args.command == "params":
        print(_format_parameters(plan.model, args.json))
        return 0
    overrides = dict(args.overrides)
    if args.output_root:
        overrides["output_root"] = args.output_root
    if args.dask_address:
        overrides.update(backend="dask", dask_address=args.dask_address)
    from pydantic import ValidationError
    try:
        params = plan.model.model_validate(overrides)
    except ValidationError as error:
        print(f"terafeat: invalid parameters for {args.flow}: "
              f"{validation_message(error, plan.model)}", file=sys.stderr)
        return 2
    from flows.stages import check_scheduler
    try:
        check_scheduler(params)
    except (ConnectionError, ValueError) as error:
        print(f"terafeat: {error}", file=sys.stderr)
        return 2
    from flows.api_server import start_run_bound_server
    from flows.progress import terminal_progress
    try:
        with _sigterm_as_interrupt(), terminal_progress():
            start_run_bound_server()
            results = flow_function(**dict(params))
    except KeyboardInterrupt as interrupt:
        terminated = isinstance(interrupt, Terminated)
        print(f"terafeat: {args.flow} {'terminated' if terminated else 'interrupted'}; its "
              "finished stages are cached: run it again to resume", file=sys.stderr)
        return 128 + (signal.SIGTERM if terminated else signal.SIGINT)
    print(f"report: {results['report']}")
    return 0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as Ctrl-C's KeyboardInterrupt is: the run stops the same way."""


def _raise_terminated(signum, frame):
    raise Terminated


@contextmanager
def _sigterm_as_interrupt():
    """SIGTERM raises :class:`Terminated` meanwhile (Prefect's flow engine, which
    installs its own handler during a flow run, hands the signal on to this one)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _compare(run_a: Path, run_b: Path, output_root: Path) -> int:
    from reporting.run_diff import compare_report, load_run
    from runs.folders import new_run_dir
    try:
        for run in (run_a, run_b):
            load_run(run)
    except ValueError as error:
        print(f"terafeat: {error}", file=sys.stderr)
        return 2
    out = new_run_dir(output_root, "compare", f"{run_a.name}-vs-{run_b.name}")
    print(f"report: {compare_report(run_a, run_b, out / 'index.html').resolve()}")
    return 0


def _option_overrides(parser: argparse.ArgumentParser, extra: list[str]) -> list[tuple]:
    """``--key value`` / ``--key=value`` pairs (dashes in keys read as underscores)."""
    overrides, items = [], list(extra)
    while items:
        option = items.pop(0)
        if not option.startswith("--") or len(option) == 2:
            parser.error(f"unexpected argument {option!r}: parameters are --KEY VALUE")
        key, sep, value = option[2:].partition("=")
        if not sep:
            if not items or items[0].startswith("--"):
                parser.error(f"--{key} needs a value")
            value = items.pop(0)
        overrides.append(_parse_assignment(f"{key.replace('-', '_')}={value}"))
    return overrides


def _run_task(args) -> int:
    import logging

    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings
    from pydantic import ValidationError

    from flows.stages import replay_stage
    from terafeat.atomic_files import load_json
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results_path = args.run / "results.json"
    if not results_path.is_file():
        print(f"terafeat: {args.run}: no results.json here: not a finished run folder",
              file=sys.stderr)
        return 2
    flow = load_json(results_path).get("flow")
    if flow not in FLOWS:
        print(f"terafeat: {results_path}: flow {flow!r} is not one of {', '.join(sorted(FLOWS))}",
              file=sys.stderr)
        return 2
    plan = load_flow(flow)[1]
    from flows.progress import logged_progress, terminal_progress
    try:
        # no flow run to attach records to: the log goes to the terminal only, even where
        # PREFECT_API_URL names a server (else Prefect warns before every record)
        with terminal_progress(), logged_progress(), \
                temporary_settings({PREFECT_LOGGING_TO_API_ENABLED: False}):
            replay = replay_stage(plan, args.stage, args.run, dict(args.overrides),
                                  args.output_root)
    except ValidationError as error:
        print(f"terafeat: invalid parameters for {args.stage}: "
              f"{validation_message(error, plan.model)}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"terafeat: {error}", file=sys.stderr)
        return 2
    for path in replay.inputs:
        print(f"read: {path}")
    print(f"wrote ({replay.folder}):")
    for path in sorted(p for p in replay.folder.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(replay.folder)}  ({path.stat().st_size} bytes)")
    print(json.dumps(replay.result, indent=2, default=str))
    return 0


def _size(text: str) -> int:
    from runs.stage_cache import parse_size
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_cache_parser(commands) -> None:
    """``terafeat cache list`` and ``terafeat cache prune``."""
    cache = commands.add_parser("cache", help="the stage cache: list its entries, or prune them")
    actions = cache.add_subparsers(dest="cache_action", required=True)
    listing = actions.add_parser("list", help="each entry: stage, key prefix, size, age "
                                              "(since stored), last used")
    prune = actions.add_parser("prune", help="remove entries unused for DAYS, then the least "
                                             "recently used until the rest fit in SIZE")
    for action in (listing, prune):
        action.add_argument("--cache-root", type=Path, default=Path("data/cache"),
                            help="the cache folder (default: ./data/cache)")
    prune.add_argument("--older-than", type=float, metavar="DAYS",
                       help="remove entries not used for more than DAYS days")
    prune.add_argument("--max-size", type=_size, metavar="SIZE",
                       help="then remove the least recently used until the rest total at most "
                            "SIZE (2GB = 2*10^9 bytes, 1.5GiB = 1.5*2^30, 500MB)")


def _cache_command(args) -> int:
    from runs.stage_cache import format_entries, format_size, list_entries, prune
    if args.cache_action == "list":
        print(format_entries(list_entries(args.cache_root)))
        return 0
    if args.older_than is None and args.max_size is None:
        print("terafeat: cache prune: give --older-than DAYS and/or --max-size SIZE",
              file=sys.stderr)
        return 2
    removed = prune(args.cache_root, args.older_than, args.max_size)
    for entry in removed:
        print(f"removed {entry.stage}/{entry.key} ({format_size(entry.size)})")
    kept = list_entries(args.cache_root)
    print(f"removed {len(removed)} entries ({format_size(sum(e.size for e in removed))}); "
          f"kept {len(kept)} ({format_size(sum(e.size for e in kept))})")
    return 0


def _format_parameters(model, as_json: bool) -> str:
    """``terafeat params``: a table (or JSON rows) of name, type, default, bounds, description."""
    from flows.parameters import describe
    rows = describe(model)
    if as_json:
        return json.dumps(rows, indent=2, default=str)
    lines = []
    for row in rows:
        bounds = ", ".join(f"{key} {value}" for key, value in row["bounds"].items())
        lines.append(f"{row['name']}: {row['type']} = {json.dumps(row['default'], default=str)}"
                     + (f"  [{bounds}]" if bounds else ""))
        if row["description"]:
            lines.append(f"    {row['description']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
