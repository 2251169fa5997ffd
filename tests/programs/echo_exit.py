"""Reads stdin, echoes it with its argv to stdout, writes to stderr, exits with argv[1]."""

import sys

line = sys.stdin.readline()
print("argv:", sys.argv[1:])
print("stdin:", line.strip())
print("to stderr", file=sys.stderr)
sys.stdout.flush()
sys.exit(int(sys.argv[1]))
