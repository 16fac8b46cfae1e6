#!/usr/bin/env python3
"""deploy/compose.yaml end to end, with podman-compose (`make compose-e2e`, part of `make test`).

usage: IMAGE=localhost/mycel:0.1.0 deploy/compose-e2e.py [RESULTS_FILE]

Brings the compose file up as project mycel-compose-<pid> on free loopback ports, then checks: every
service runs and its healthcheck command passes, the hardening holds (uid 1000, read-only root),
the status lists three nodes, uploads and downloads through the gateway (and the Kubo RPC port),
a SIGKILLed node leaves reads and uploads working and comes back with its data, `stop` lets every
process exit 0, and `up` after `down` (volumes kept) serves every file again. Removes its
containers, volumes and network at the end, and those of earlier runs that were killed.
With RESULTS_FILE, appends "compose-e2e passed N failed N" to it.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import (  # noqa: E402
    Checks, free_port, healthy, http, node_id, podman, remove_stale, running, unreadable, wait_for,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE = os.path.join(ROOT, 'deploy/compose.yaml')
PROJECT = f'mycel-compose-{os.getpid()}'
LABEL = 'io.podman.compose.project'
RESULTS = sys.argv[1] if len(sys.argv) > 1 else None
t = Checks('compose-e2e')
http_port, rpc_port = free_port(), free_port()
env = {**os.environ, 'MYCEL_IMAGE': os.environ['IMAGE'], 'MYCEL_HTTP_PORT': str(http_port),
       'MYCEL_RPC_PORT': str(rpc_port)}
url = f'http://127.0.0.1:{http_port}'
services = ['node-0', 'node-1', 'node-2', 'gateway']


def compose(*args, timeout=300):
    r = subprocess.run(['podman-compose', '-p', PROJECT, '-f', COMPOSE, *args], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f'podman-compose {" ".join(args)} failed: {r.stderr.strip()[-800:]}')
    return r


def cname(service):
    return f'{PROJECT}_{service}_1'


def status():
    code, body = http('GET', f'{url}/mycel/v1/status')
    return json.loads(body) if code == 200 else None


def healthy_nodes():
    st = status()
    return st is not None and st['ready'] and sum(healthy(n) for n in st['nodes']) == 3


def upload(files, size):
    data = os.urandom(size)
    code, body = http('POST', f'{url}/mycel/v1/upload', data)
    if code == 201:
        files[json.loads(body)['cid']] = hashlib.sha256(data).hexdigest()
    return code, body


def main():
    compose('up', '-d')
    t.check('every service runs', wait_for(lambda: all(running(cname(s)) for s in services), 180),
            podman('ps', '-a', '--filter', f'label={LABEL}={PROJECT}', '--format', '{{.Names}} {{.Status}}').stdout)
    for s in services:
        t.check(f'{s}: its healthcheck command passes',
                wait_for(lambda s=s: podman('healthcheck', 'run', cname(s), check_rc=False).returncode == 0, 180, 1))
    uid = podman('exec', cname('node-0'), 'id', '-u').stdout.strip()
    t.check('node runs as uid 1000', uid == '1000', uid)
    ro = podman('exec', cname('gateway'), 'node', '-e',
                "try{require('fs').writeFileSync('/probe','x');console.log('writable')}catch(e){console.log(e.code)}").stdout.strip()
    t.check('the root filesystem is read-only', ro == 'EROFS', ro)
    t.check('status lists three healthy nodes by service name', wait_for(healthy_nodes, 180),
            json.dumps(status())[:300])

    files = {}
    for size in (0, 1000, 3 * 1024 * 1024 + 5):
        code, body = upload(files, size)
        t.check(f'upload {size} bytes: 201', code == 201, f'{code} {body[:200]!r}')
    bad = unreadable(url, files)
    t.check('every file reads back', not bad, '; '.join(bad))
    code, body = http('POST', f'http://127.0.0.1:{rpc_port}/api/v0/version')
    t.check('the Kubo RPC port answers /api/v0/version', code == 200, f'{code} {body[:200]!r}')

    before = next(node_id(n) for n in status()['nodes'] if n['address'].startswith('node-1:'))
    podman('kill', '-s', 'KILL', cname('node-1'))
    bad = unreadable(url, files)
    t.check('with node-1 killed, every file reads back', not bad, '; '.join(bad))
    code, body = upload(files, 2 * 1024 * 1024)
    t.check('with node-1 killed, an upload still reaches W=2', code == 201, f'{code} {body[:200]!r}')
    podman('start', cname('node-1'))
    t.check('node-1 serves again after a restart', wait_for(healthy_nodes, 180, 1))
    same = next((node_id(n) for n in status()['nodes'] if n['address'].startswith('node-1:')), None)
    t.check('node-1 kept its volume (same node id)', same == before, f'{before} -> {same}')

    compose('stop', '-t', '60', timeout=400)
    for s in services:
        code = podman('inspect', '--format', '{{.State.ExitCode}}', cname(s)).stdout.strip()
        t.check(f'{s} exits 0 on stop (SIGTERM, drain)', code == '0', f'exit {code}')
    compose('down')
    compose('up', '-d')
    t.check('up again after down: three healthy nodes', wait_for(healthy_nodes, 180, 1))
    bad = unreadable(url, files)
    t.check('up again after down: the volumes kept every file', not bad, '; '.join(bad))


def cleanup():
    subprocess.run(['podman-compose', '-p', PROJECT, '-f', COMPOSE, 'down', '-v', '-t', '5'], capture_output=True,
                   env=env, timeout=300)
    podman('network', 'rm', '-f', f'{PROJECT}_default', check_rc=False)
    remove_stale(LABEL, 'mycel-compose-')
    left = podman('ps', '-a', '--filter', f'label={LABEL}={PROJECT}', '-q').stdout.split()
    left += podman('volume', 'ls', '--filter', f'label={LABEL}={PROJECT}', '-q').stdout.split()
    left += [n for n in podman('network', 'ls', '--format', '{{.Name}}').stdout.split() if n.startswith(PROJECT)]
    t.check('nothing of the project is left (containers, volumes, network)', not left, ' '.join(left))


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    print(f'compose-e2e: {env["MYCEL_IMAGE"]}, project {PROJECT}, gateway {url}')
    if shutil.which('podman-compose') is None:
        t.check('podman-compose is installed (make host-deps)', False)
        t.finish(RESULTS)
    remove_stale(LABEL, 'mycel-compose-')
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any error is a failed check, then cleanup
        t.check('compose-e2e ran to the end', False, f'{type(e).__name__}: {e}')
        for s in services:
            logs = podman('logs', '--tail', '15', cname(s), check_rc=False)
            print(f'--- {s}\n{logs.stdout}{logs.stderr}')
    finally:
        cleanup()
    t.finish(RESULTS)
