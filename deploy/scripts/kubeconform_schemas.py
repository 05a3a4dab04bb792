#!/usr/bin/env python3
"""Writes kubeconform's offline schemas from those bundled in kubernetes-validate.

kubernetes-validate (PyPI, pinned in deploy/requirements.txt) bundles the strict JSON schemas of each
Kubernetes minor version, one file per kind named as kubeconform names them
(`deployment-apps-v1.json`), but their `$ref`s point at `/api/_definitions.json`, which kubeconform
cannot follow. This copies each kind's schema with the definitions it reaches inlined under `$defs`
(only those: the whole definitions file is 1.2 MB), so that

    kubeconform -strict -kubernetes-version 1.30.0 \\
      -schema-location 'OUT/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json'

works with nothing fetched.

    kubeconform_schemas.py OUT 1.30.0,1.37.0
"""

import json
import os
import sys

import kubernetes_validate

# A kind's file refers into the definitions file; the definitions refer to each other locally.
REF_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")


def rewrite(node, reached, defs):
    """Points every $ref at the local $defs and collects the definitions it reaches."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            prefix = next((p for p in REF_PREFIXES if isinstance(value, str) and value.startswith(p)), None)
            if key == "$ref" and prefix:
                name = value[len(prefix):]
                out[key] = "#/$defs/" + name
                if name not in reached:
                    reached[name] = None
                    reached[name] = rewrite(defs[name], reached, defs)
            else:
                out[key] = rewrite(value, reached, defs)
        return out
    if isinstance(node, list):
        return [rewrite(value, reached, defs) for value in node]
    return node


def convert(source, target):
    with open(os.path.join(source, "_definitions.json"), encoding="utf-8") as f:
        defs = json.load(f)["$defs"]
    os.makedirs(target, exist_ok=True)
    count = 0
    for name in sorted(os.listdir(source)):
        if not name.endswith(".json") or name.startswith("_") or name == "all.json":
            continue
        with open(os.path.join(source, name), encoding="utf-8") as f:
            schema = json.load(f)
        reached = {}
        schema = rewrite(schema, reached, defs)
        if reached:
            schema["$defs"] = reached
        schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
        with open(os.path.join(target, name), "w", encoding="utf-8") as f:
            json.dump(schema, f, separators=(",", ":"))
        count += 1
    return count


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    out, versions = sys.argv[1], [v.strip() for v in sys.argv[2].split(",") if v.strip()]
    bundled = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    for version in versions:
        source = os.path.join(bundled, f"v{version}-local-strict")
        if not os.path.isdir(source):
            print(f"kubernetes-validate has no schemas for Kubernetes {version}", file=sys.stderr)
            return 1
        count = convert(source, os.path.join(out, f"v{version}-standalone-strict"))
        print(f"kubeconform schemas: Kubernetes {version}: {count} kinds in {out}/v{version}-standalone-strict")
    return 0


if __name__ == "__main__":
    sys.exit(main())
