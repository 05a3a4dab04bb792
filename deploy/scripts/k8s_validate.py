#!/usr/bin/env python3
"""Validates Kubernetes objects against the Kubernetes JSON schemas, offline.

The schemas come with the `kubernetes-validate` package from PyPI (deploy/requirements.txt pins it):
it bundles the strict JSON schemas (unknown fields rejected) of every Kubernetes minor version it
supports, so nothing is fetched at validation time. Unlike its own command line, a kind without a
schema here is an error, not a warning.

    k8s_validate.py [--kubernetes 1.30.0,1.37.0] [--json] FILE.yaml|-

Reads one or more YAML (or JSON) documents, validates each object against each Kubernetes version,
prints one line per object to stderr, and with --json writes the parsed objects to stdout as one JSON
array (the tests read the rendered manifests that way). Exit status 1 when any object is invalid.
"""

import argparse
import json
import sys

import yaml
import kubernetes_validate.utils as kv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="YAML or JSON file, - for standard input")
    parser.add_argument("--kubernetes", default="1.30.0,1.37.0", help="comma-separated versions")
    parser.add_argument("--json", action="store_true", help="write the objects to stdout as JSON")
    parser.add_argument("--quiet", action="store_true", help="report failures only")
    args = parser.parse_args()

    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    objects = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    # A JSON array (the Job builder's output, several objects) is accepted as well.
    if len(objects) == 1 and isinstance(objects[0], list):
        objects = objects[0]
    versions = [v.strip() for v in args.kubernetes.split(",") if v.strip()]
    if not objects:
        print(f"ERROR {args.file}: no objects", file=sys.stderr)
        return 1

    failures = 0
    for obj in objects:
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            print(f"ERROR {args.file}: not a Kubernetes object: {json.dumps(obj)[:200]}", file=sys.stderr)
            failures += 1
            continue
        name = f"{obj['kind']}/{(obj.get('metadata') or {}).get('name', '?')}"
        problems = []
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                problems.append(f"Kubernetes {e.version}: {path or '(root)'}: {e.message}")
            except kv.SchemaNotFoundError as e:
                problems.append(e.message)
            except kv.VersionNotSupportedError as e:
                problems.append(e.message)
        if problems:
            failures += 1
            for problem in problems:
                print(f"INVALID {name} ({obj.get('apiVersion')}): {problem}", file=sys.stderr)
        elif not args.quiet:
            print(f"valid   {name} ({obj['apiVersion']}) against {', '.join(versions)}", file=sys.stderr)

    if args.json:
        json.dump(objects, sys.stdout)
        sys.stdout.write("\n")
    print(
        f"{len(objects) - failures} of {len(objects)} objects valid (strict schemas, Kubernetes {', '.join(versions)},"
        f" kubernetes-validate {kv.__version__})",
        file=sys.stderr,
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
