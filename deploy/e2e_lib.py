"""Shared by deploy/chart-e2e.py and deploy/compose-e2e.py: checks and their result line, podman and
HTTP helpers, polling, and removal of what an earlier run left behind."""
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


class Checks:
    """Counts checks, prints one line each, and appends "NAME passed N failed N" to a results file."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.started = time.time()

    def check(self, what, ok, detail=''):
        if ok:
            self.passed += 1
            print(f'  ok    {what}')
        else:
            self.failed += 1
            print(f'  FAIL  {what}{": " + detail if detail else ""}')
        return ok

    def finish(self, results_file):
        print(f'{self.name}: {self.passed} passed, {self.failed} failed, {time.time() - self.started:.0f} s')
        if results_file:
            with open(results_file, 'a') as f:
                f.write(f'{self.name} passed {self.passed} failed {self.failed}\n')
        sys.exit(1 if self.failed else 0)


def podman(*args, check_rc=True, timeout=180, env=None):
    r = subprocess.run(['podman', *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f'podman {" ".join(args)} failed ({r.returncode}): {r.stderr.strip()}')
    return r


def http(method, url, body=None, timeout=30, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class GaveUp(Exception):
    """Raised inside a wait_for condition to stop waiting at once (the awaited thing cannot happen)."""


def wait_for(fn, seconds, interval=0.5):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if fn():
                return True
        except GaveUp:
            return False
        except Exception:  # noqa: BLE001 - retried until the deadline
            pass
        time.sleep(interval)
    return False


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def running(cname):
    return podman('inspect', '--format', '{{.State.Running}}', cname, check_rc=False).stdout.strip() == 'true'


def pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def remove_stale(label, prefix):
    """Removes containers, volumes and networks whose LABEL is PREFIX<pid> for a pid that is gone: what
    a run killed before its own cleanup left behind."""
    def stale(labels):
        value = (labels or {}).get(label, '')
        if not value.startswith(prefix) or not value[len(prefix):].isdigit():
            return False
        return not pid_alive(int(value[len(prefix):]))

    def listing(*args):
        out = podman(*args, '--filter', f'label={label}', '--format', 'json', check_rc=False).stdout
        return json.loads(out or '[]') or []

    for c in listing('ps', '-a'):
        if stale(c.get('Labels')):
            podman('rm', '-f', '-t', '0', c['Id'], check_rc=False)
    for v in listing('volume', 'ls'):
        if stale(v.get('Labels')):
            podman('volume', 'rm', '-f', v['Name'], check_rc=False)
    for n in listing('network', 'ls'):
        if stale(n.get('Labels') or n.get('labels')):
            podman('network', 'rm', '-f', n.get('Name') or n.get('name'), check_rc=False)


def healthy(node):
    """A node of /mycel/v1/status serving: alive in gossip and answering the gateway's probe."""
    return node['state'] == 'alive' and node['reachable']


def node_id(node):
    return node['id']


def unreadable(url, files):
    """The files ({cid: sha256}) that the gateway at URL does not return byte for byte."""
    bad = []
    for cid, digest in files.items():
        code, body = http('GET', f'{url}/ipfs/{cid}')
        if code != 200 or hashlib.sha256(body).hexdigest() != digest:
            bad.append(f'{cid}: {code}')
    return bad
