"""``memscope keys DIR [--name NAME]``: write a CURVE key pair for brokers and producers."""

from __future__ import annotations

import argparse
from pathlib import Path

from memscope.errors import CliError


class KeysCommand:
    """Create ``DIR/NAME.key`` (public) and ``DIR/NAME.key_secret`` (keep private)."""

    name = "keys"
    help = "make a CURVE key pair for an authenticated broker"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare the options."""
        parser.add_argument("directory", help="where to write the key files")
        parser.add_argument("--name", default="broker", help="file name stem (default: broker)")

    def run(self, args: argparse.Namespace) -> int:
        """Write the pair; refuse to overwrite an existing one."""
        import zmq
        import zmq.auth

        if not zmq.has("curve"):
            raise CliError("this libzmq has no CURVE support")
        directory = Path(args.directory)
        public = directory / f"{args.name}.key"
        secret = directory / f"{args.name}.key_secret"
        for path in (public, secret):
            if path.exists():
                raise CliError(f"{path} exists; choose another --name or directory")
        directory.mkdir(parents=True, exist_ok=True)
        zmq.auth.create_certificates(directory, args.name)
        secret.chmod(0o600)
        print(f"public key: {public}\nsecret key: {secret} (keep it private)")
        return 0


COMMAND = KeysCommand()
