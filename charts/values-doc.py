#!/usr/bin/env python3
"""Generates the Values table of charts/mycel/README.md from the `# --` comments in values.yaml.

usage: values-doc.py [--check]   (--check: exit 1 when the README's table is not current)

A `# -- text` comment documents the key on the next line; nested keys are dotted. The table sits
between the markers <!-- values:start --> and <!-- values:end -->.
"""
import json
import os
import re
import sys

import yaml

chart = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'mycel')
values_path = os.path.join(chart, 'values.yaml')
readme_path = os.path.join(chart, 'README.md')
values = yaml.safe_load(open(values_path))

rows, stack, pending = [], [], None
for line in open(values_path):
    m = re.match(r'^(\s*)# -- (.*)$', line)
    if m:
        pending = m.group(2).strip()
        continue
    m = re.match(r'^(\s*)([A-Za-z0-9_]+):', line)
    if not m:
        continue
    depth = len(m.group(1)) // 2
    stack = stack[:depth] + [m.group(2)]
    if pending is not None:
        node = values
        for k in stack:
            node = node[k]
        default = json.dumps(node, separators=(', ', ': ')) if node not in ('', None) else ('`""`' if node == '' else '`null`')
        if not default.startswith('`'):
            default = f'`{default}`'
        desc = pending.replace('|', '\\|')
        rows.append(f'| `{".".join(stack)}` | {default} | {desc} |')
        pending = None

documented = {r.split('`')[1] for r in rows}


def undocumented(node, path):
    if path and path in documented:
        return []
    if isinstance(node, dict) and node:
        return [m for k, v in node.items() for m in undocumented(v, f'{path}.{k}' if path else k)]
    return [path]


missing = undocumented(values, '')
if missing:
    sys.exit(f'values.yaml: keys without a "# --" comment: {", ".join(missing)}')
table = '\n'.join(['| key | default | description |', '|---|---|---|', *rows])
readme = open(readme_path).read()
start, end = '<!-- values:start -->\n', '\n<!-- values:end -->'
i, j = readme.index(start) + len(start), readme.index(end)
updated = readme[:i] + table + readme[j:]
if '--check' in sys.argv:
    if updated != readme:
        sys.exit('charts/mycel/README.md: the values table is not current; run charts/values-doc.py')
    print(f'values table current ({len(rows)} keys)')
else:
    open(readme_path, 'w').write(updated)
    print(f'wrote {len(rows)} keys to {readme_path}')
