"""``memscope broker --bind ADDR --log DIR``: a standalone broker."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from memscope.config import load_settings
from memscope.errors import CliError


class BrokerCommand:
    """Run a broker until SIGTERM/SIGINT."""

    name = "broker"
    help = "a standalone broker for services and many hosts"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the options."""
        parser.add_argument(
            "--bind", required=True, help="data address, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/ms"
        )
        parser.add_argument("--log", required=True, help="log directory (created if missing)")
        parser.add_argument("--control", help="control address (default: beside --bind)")
        parser.add_argument("--feed", help="live feed address (default: beside --bind)")
        parser.add_argument("--quiet", action="store_true", help="log warnings only")
        parser.add_argument(
            "--exit-with-parent",
            action="store_true",
            help="flush and stop once the process that started this broker is gone "
            "and no batch has arrived for a few seconds (used by embedded brokers)",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Serve; return 0 after a clean stop."""
        from memscope.analyzers.broker_analysis import log_analysis
        from memscope.broker.server import Broker, BrokerConfigError, return_freed_memory

        return_freed_memory()
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            format="memscope broker: %(message)s",
        )
        try:
            settings = load_settings()
            broker = Broker(
                args.log,
                args.bind,
                settings,
                control=args.control,
                feed=args.feed,
                analysis=log_analysis(),
            )
        except (BrokerConfigError, ValueError) as exc:
            raise CliError(str(exc)) from None
        broker.install_signal_handlers()
        if args.exit_with_parent:
            broker.stop_when_orphaned(os.getppid())
        print(
            f"memscope broker: data {broker.bind} control {broker.control_address} "
            f"feed {broker.feed_address} log {broker.writer.path}",
            flush=True,
        )
        broker.run()
        if args.exit_with_parent:
            # An embedded broker: its owner waits for its exit, and the log is closed. No
            # interpreter teardown (tenths of a second of freeing pyarrow's and zmq's objects
            # on the path from a traced program's exit to its reports).
            from memscope.timings import mark

            mark("broker closed the log")
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        return 0


COMMAND = BrokerCommand()
