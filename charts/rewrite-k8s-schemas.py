#!/usr/bin/env python3
"""Extract Kubernetes JSON schemas from the kubernetes-validate wheel for offline kubeconform.

usage: rewrite-k8s-schemas.py WHEEL OUT_DIR VERSION_DIR...   (e.g. v1.34.0-local v1.34.0-local-strict)

The wheel's schemas carry an `$id` on kubernetes.io and absolute `$ref`s
(`/api/_definitions.json#/...`), which make kubeconform stall and then report "could not find
schema". Each file is rewritten once: the `$id` is dropped and the refs become relative to the
file's own folder (`_definitions.json#/...`).
"""
import json
import os
import re
import sys
import zipfile

wheel, out, *versions = sys.argv[1:]
prefix = 'kubernetes_validate/kubernetes-json-schema/'
ref = re.compile(r'"\$ref":\s*"[^"#]*/(_definitions\.json#[^"]*)"')
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if not name.startswith(prefix) or not name.endswith('.json'):
            continue
        rel = name[len(prefix):]
        version = rel.split('/', 1)[0]
        if version not in versions:
            continue
        text = z.read(name).decode()
        doc = json.loads(ref.sub(r'"$ref": "\1"', text))
        doc.pop('$id', None)
        target = f'{out}/{rel}'
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, 'w') as f:
            json.dump(doc, f)
        count += 1
if count == 0:
    sys.exit(f'no schemas for {versions} in {wheel}')
print(f'{count} schemas written to {out}')
