"""The depot's grammar: every name uvslurm creates in a depot, and nothing else. Pure.

`depot gc`/`depot rm` only ever touch names these patterns match, inside a directory that
carries the depot marker: a depot set by mistake to `$SCRATCH` itself loses nothing.
"""

from __future__ import annotations

import re

DEPOT_MARKER = ".uvslurm-depot"
# <depot>/<project id>: the project directory's name (bytes outside [A-Za-z0-9._-] as '_', at
# most 40) and 10 hex digits of the path's hash
PROJECT_DIR = re.compile(r"^[A-Za-z0-9._-]{0,40}-[0-9a-f]{10}$")
# a job venv: 12 hex digits of fingerprint, 8 of uv.lock
KEY = r"[0-9a-f]{12}-[0-9a-f]{8}"
JOB_VENV = re.compile(rf"^{KEY}$")
SHELL_VENV = re.compile(r"^shell-[0-9a-f]{12}$")
# what a project directory remembers: fingerprint hashes, and small uv.locks by their hash
KEYS = ".keys"
LOCK_COPY = re.compile(r"^\.lock-[0-9a-f]{16}$")
# the pyproject.toml and uv.lock a job was submitted with, content-addressed, that the node
# builds its venv from (its other entries: links to the project's)
SUBMITTED = re.compile(r"^\.submitted-[0-9a-f]{16}$")
# `submit --snapshot`: the project's git-tracked files, content-addressed, that the job runs in
SNAPSHOT = re.compile(r"^\.snapshot-[0-9a-f]{16}$")
KEY_LOCK = re.compile(rf"^(?P<key>{KEY})\.lock$")
IMAGE = re.compile(rf"^(?P<key>{KEY})\.(?:squashfs|tar\.zst)$")
# a builder's private directory, what a builder or gc renamed away, a killed packer's image
BUILD = re.compile(rf"^\.(?P<key>{KEY})\.build-.+$")
TRASH = re.compile(rf"^\.(?P<key>{KEY}|shell-[0-9a-f]{{12}})\.trash-.+$")
PACK = re.compile(rf"^(?P<key>{KEY})\.(?:squashfs|tar\.zst)\.tmp-\d+$")
# a builder's lease (where flock does not exclude across nodes), a breaker's turn at a stale one,
# and the record of a failed build (kept a minute, so that waiting jobs fail at once)
LEASE = re.compile(rf"^\.(?P<key>{KEY})\.lease(?:\.break)?$")
FAILED = re.compile(rf"^\.(?P<key>{KEY})\.failed$")
# a start on its full path that starts with the same inputs wait for (prolog fast.sh)
PENDING = re.compile(r"^\.pending-.+-\d+$")
# the warm start's memo, and the certificates' variables that the run step hands to the
# command (prolog fast.sh: _uvslurm_tls)
MEMO = ".memo"
TLS_ENV = re.compile(r"^\.tls-env-[0-3]$")
# rebuilt wheels: <depot>/.wheels/<name>-<version>/<fingerprint>/
WHEEL_PKG = re.compile(r"^[A-Za-z0-9._+!-]+$")
FINGERPRINT = re.compile(r"^[0-9a-f]{12}$")
WHEEL_BUILD = re.compile(r"^\.(?P<key>[0-9a-f]{12})\.build-.+$")
WHEEL_LOCK = re.compile(r"^(?P<key>[0-9a-f]{12})\.lock$")
# a node-local copy of a job venv, <node-local>/uvslurm-<uid>/<project id>-<key>: the prolog
# prunes (place.sh) only names of this grammar
NODE_COPY = re.compile(rf"^[A-Za-z0-9._-]{{0,40}}-[0-9a-f]{{10}}-{KEY}$")
WHEEL_LEASE = re.compile(r"^\.(?P<key>[0-9a-f]{12})\.lease(?:\.break)?$")
# what the depot's top level may hold besides project directories
# what is known of the depot's flocks where they do not exclude across nodes (depot.locks)
LOCKS = ".uvslurm-locks"
TOP_LEVEL = frozenset({DEPOT_MARKER, LOCKS, ".facts", ".wheels", ".prefetch", ".sources"})


def is_depot_entry(name: str) -> bool:
    """Could uvslurm have made `name` at the top of a depot?"""
    return name in TOP_LEVEL or bool(PROJECT_DIR.match(name)) or name.startswith(".write-test-")
