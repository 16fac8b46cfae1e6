#!/usr/bin/env python3
"""Rendered-chart end-to-end test: run what charts/mycel renders as real containers.

usage: HELM=... IMAGE=localhost/mycel:0.1.0 deploy/chart-e2e.py [RESULTS_FILE]

1. `helm template` the chart with its default values (only the image is set).
2. Translate the StatefulSet into one container per ordinal and the Deployment into one gateway
   container on a private podman network, using the rendered args, env (downward-API fieldRefs
   resolved as the kubelet would), securityContext (user, read-only root filesystem, dropped
   capabilities, no-new-privileges) and volume mounts (named volumes; Secret volumes as read-only
   files written from the rendered Secrets; nothing else writable).
   Every container resolves each node's stable DNS name, <sts>-<i>.<headless>.<ns>.svc.cluster.local,
   to that node's fixed address on the network, as cluster DNS would.
3. Check the probes' paths and ports answer 200 inside each container, that an upload without a
   token is refused (401), then upload (with the generated admin token) and download through the
   gateway and pin over mutual TLS, SIGKILL a node, read everything back and upload again (W=2 of R=3), restart
   it, and stop every container with SIGTERM expecting a prompt exit 0.

Prints one line per check and, with RESULTS_FILE, appends "chart-e2e passed N failed N" to it.
Everything created is removed at the end (containers, volumes, network), by name.
"""
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

try:
    import yaml
except ImportError:
    sys.exit('chart-e2e: needs PyYAML (python3 -m pip install pyyaml)')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELM = os.environ['HELM']
IMAGE = os.environ['IMAGE']
RESULTS = sys.argv[1] if len(sys.argv) > 1 else None
RUN_ID = f'{os.getpid()}'
NS = 'mycel-e2e'
RELEASE = 'mycel'
NET = f'mycel-e2e-{RUN_ID}'
PREFIX = f'mycel-e2e-{RUN_ID}-'

passed = 0
failed = 0
created = {'containers': [], 'volumes': [], 'network': None, 'dirs': []}
# The rendered Secrets by name: their data as bytes.
secrets = {}
# Sent with every request to the gateway (the generated admin token when the chart requires tokens).
auth_headers = {}


def check(name, ok, detail=''):
    global passed, failed
    if ok:
        passed += 1
        print(f'  ok    {name}')
    else:
        failed += 1
        print(f'  FAIL  {name}{": " + detail if detail else ""}')
    return ok


def podman(*args, check_rc=True, timeout=120):
    r = subprocess.run(['podman', *args], capture_output=True, text=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f'podman {" ".join(args)} failed ({r.returncode}): {r.stderr.strip()}')
    return r


def render():
    repo, tag = IMAGE.rsplit(':', 1)
    out = subprocess.run(
        [HELM, 'template', RELEASE, os.path.join(ROOT, 'charts/mycel'), '--namespace', NS,
         '--kube-version', '1.34.0', '--set', f'image.repository={repo}', '--set', f'image.tag={tag}',
         '--set', 'image.pullPolicy=Never'],
        capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def resolve_env(container, pod_name, pod_labels):
    env = {}
    for e in container.get('env', []):
        if 'value' in e:
            # The kubelet expands $(VAR) with variables defined earlier in the list.
            env[e['name']] = re.sub(r'\$\(([A-Za-z_][A-Za-z0-9_]*)\)',
                                    lambda m: env.get(m.group(1), m.group(0)), str(e['value']))
        elif 'secretKeyRef' in e.get('valueFrom', {}):
            ref = e['valueFrom']['secretKeyRef']
            env[e['name']] = secrets[ref['name']][ref['key']].decode()
        elif 'fieldRef' in e.get('valueFrom', {}):
            path = e['valueFrom']['fieldRef']['fieldPath']
            if path == 'metadata.name':
                env[e['name']] = pod_name
            elif path == 'metadata.namespace':
                env[e['name']] = NS
            elif path == 'spec.nodeName':
                env[e['name']] = 'podman-host'
            elif path.startswith("metadata.labels['"):
                # The kubelet gives an empty string for a label the pod does not carry.
                env[e['name']] = pod_labels.get(path[len("metadata.labels['"):-2], '')
            else:
                raise RuntimeError(f'unsupported fieldRef {path}')
        else:
            raise RuntimeError(f'unsupported env source in {e}')
    return env


def volume_flags(pod_spec, container, owner):
    """podman -v flags for the container's mounts: a named volume for each emptyDir or claim, and
    a Secret volume's items as files in a read-only bind mount (as the kubelet projects them)."""
    declared = {v['name']: v for v in pod_spec.get('volumes', [])}
    flags = []
    for m in container.get('volumeMounts', []):
        secret = declared.get(m['name'], {}).get('secret')
        if secret is not None:
            data = secrets[secret['secretName']]
            d = tempfile.mkdtemp(prefix=f'{PREFIX}{m["name"]}-')
            created['dirs'].append(d)
            for item in secret.get('items') or [{'key': k, 'path': k} for k in data]:
                with open(os.path.join(d, item['path']), 'wb') as f:
                    f.write(data[item['key']])
                os.chmod(os.path.join(d, item['path']), 0o644)
            os.chmod(d, 0o755)
            flags += ['-v', f'{d}:{m["mountPath"]}:ro']
            continue
        vol = f'{PREFIX}{m["name"]}-{owner}'
        podman('volume', 'create', vol)
        created['volumes'].append(vol)
        flags += ['-v', f'{vol}:{m["mountPath"]}']
    return flags


def security_flags(pod_spec, container):
    psc = pod_spec.get('securityContext', {})
    sc = container.get('securityContext', {})
    flags = []
    uid = sc.get('runAsUser', psc.get('runAsUser'))
    gid = sc.get('runAsGroup', psc.get('runAsGroup'))
    if uid is not None:
        flags += ['--user', f'{uid}:{gid if gid is not None else uid}']
    if sc.get('readOnlyRootFilesystem'):
        # Only the declared volumes are writable: no implicit tmpfs on /tmp, /run.
        flags += ['--read-only', '--read-only-tmpfs=false']
    if 'ALL' in sc.get('capabilities', {}).get('drop', []):
        flags += ['--cap-drop', 'ALL']
    if sc.get('allowPrivilegeEscalation') is False:
        flags += ['--security-opt', 'no-new-privileges']
    return flags


def named_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get('ports', []):
        if p['name'] == port:
            return p['containerPort']
    raise RuntimeError(f'no port named {port}')


def http(method, url, body=None, timeout=30, headers=None):
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=auth_headers if headers is None else headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class ContainerExited(Exception):
    pass


def wait_for(fn, seconds, interval=0.5):
    deadline = time.time() + seconds
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return True
        except ContainerExited:
            return False
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last = e
        time.sleep(interval)
    return False


def running(cname):
    return podman('inspect', '--format', '{{.State.Running}}', cname, check_rc=False).stdout.strip() == 'true'


def probe_ok(cname, container, probe):
    if not running(cname):
        raise ContainerExited(cname)
    get = probe['httpGet']
    port = named_port(container, get['port'])
    script = (f"fetch('http://127.0.0.1:{port}{get['path']}').then(r=>process.exit(r.status===200?0:1),"
              "()=>process.exit(2))")
    return podman('exec', cname, 'node', '-e', script, check_rc=False).returncode == 0


def stop_and_check(cname, budget_s):
    t0 = time.time()
    podman('stop', '-t', str(budget_s + 20), cname, timeout=budget_s + 60)
    took = time.time() - t0
    code = podman('inspect', '--format', '{{.State.ExitCode}}', cname).stdout.strip()
    return code == '0' and took < budget_s, f'exit {code} after {took:.1f}s'


def main():
    docs = render()
    for d in docs:
        if d['kind'] == 'Secret':
            secrets[d['metadata']['name']] = {k: base64.b64decode(v) for k, v in d.get('data', {}).items()}
    sts = next(d for d in docs if d['kind'] == 'StatefulSet')
    dep = next(d for d in docs if d['kind'] == 'Deployment')
    headless = next(d for d in docs if d['kind'] == 'Service' and d['spec'].get('clusterIP') == 'None')
    check('StatefulSet serviceName is the headless Service',
          sts['spec']['serviceName'] == headless['metadata']['name'])

    podman('network', 'create', NET)
    created['network'] = NET
    subnet = json.loads(podman('network', 'inspect', NET).stdout)[0]['subnets'][0]['subnet']
    base = subnet.split('/')[0].rsplit('.', 1)[0]

    replicas = sts['spec']['replicas']
    sts_name = sts['metadata']['name']
    nodes = []
    for i in range(replicas):
        pod = f'{sts_name}-{i}'
        nodes.append({'pod': pod, 'ip': f'{base}.{10 + i}', 'cname': PREFIX + pod,
                      'fqdn': f'{pod}.{headless["metadata"]["name"]}.{NS}.svc.cluster.local'})
    hosts = [f'--add-host={n["fqdn"]}:{n["ip"]}' for n in nodes]
    # The headless Service's own name lists every pod (the nodes' MYCEL_SEED_DNS).
    headless_fqdn = f'{headless["metadata"]["name"]}.{NS}.svc.cluster.local'
    hosts += [f'--add-host={headless_fqdn}:{n["ip"]}' for n in nodes]

    # Storage nodes: one container per ordinal, with the pod template as rendered.
    tmpl = sts['spec']['template']
    node_c = tmpl['spec']['containers'][0]
    claims = {c['metadata']['name'] for c in sts['spec']['volumeClaimTemplates']}
    for n in nodes:
        labels = dict(tmpl['metadata'].get('labels', {}))
        labels['statefulset.kubernetes.io/pod-name'] = n['pod']
        env = resolve_env(node_c, n['pod'], labels)
        vols = volume_flags(tmpl['spec'], node_c, n['pod'])
        for m in node_c.get('volumeMounts', []):
            if m['name'] not in claims:
                check(f'{n["pod"]}: volume {m["name"]} is declared by the pod', any(
                    v['name'] == m['name'] for v in tmpl['spec'].get('volumes', [])))
        args = ['run', '-d', '--name', n['cname'], '--hostname', n['pod'], '--network', NET, '--ip', n['ip'],
                *hosts, *security_flags(tmpl['spec'], node_c), *vols]
        for k, v in env.items():
            args += ['-e', f'{k}={v}']
        podman(*args, '--pull=never', node_c['image'], *node_c.get('args', []))
        created['containers'].append(n['cname'])

    # Gateway: the Deployment's pod template, HTTP published on loopback only.
    gtmpl = dep['spec']['template']
    gw_c = gtmpl['spec']['containers'][0]
    gw_env = resolve_env(gw_c, 'gateway', gtmpl['metadata'].get('labels', {}))
    expected_peers = ','.join(f'{n["fqdn"]}:{named_port(node_c, "grpc")}' for n in nodes)
    check('gateway MYCEL_PEERS lists every node by its stable DNS name', gw_env.get('MYCEL_PEERS') == expected_peers,
          gw_env.get('MYCEL_PEERS', '(unset)'))
    gw_name = PREFIX + 'gateway'
    gw_vols = volume_flags(gtmpl['spec'], gw_c, 'gateway')
    http_port = named_port(gw_c, 'http')
    args = ['run', '-d', '--name', gw_name, '--network', NET, *hosts, *security_flags(gtmpl['spec'], gw_c),
            *gw_vols, '-p', f'127.0.0.1::{http_port}']
    for k, v in gw_env.items():
        args += ['-e', f'{k}={v}']
    podman(*args, '--pull=never', gw_c['image'], *gw_c.get('args', []))
    created['containers'].append(gw_name)
    host_port = podman('port', gw_name, f'{http_port}/tcp').stdout.strip().rsplit(':', 1)[1]
    url = f'http://127.0.0.1:{host_port}'

    # Probes exactly as rendered: every node, then the gateway (ready once W nodes answer).
    for n in nodes:
        for kind in ('startupProbe', 'livenessProbe', 'readinessProbe'):
            if kind in node_c:
                check(f'{n["pod"]}: {kind} {node_c[kind]["httpGet"]["path"]} answers 200',
                      wait_for(lambda n=n, kind=kind: probe_ok(n['cname'], node_c, node_c[kind]), 60))
    for kind in ('livenessProbe', 'readinessProbe'):
        check(f'gateway: {kind} {gw_c[kind]["httpGet"]["path"]} answers 200',
              wait_for(lambda kind=kind: probe_ok(gw_name, gw_c, gw_c[kind]), 90))

    # Hardening holds at run time.
    uid = podman('exec', nodes[0]['cname'], 'node', '-e', 'console.log(process.getuid())').stdout.strip()
    check('node runs as uid 1000', uid == '1000', uid)
    ro = podman('exec', nodes[0]['cname'], 'node', '-e',
                "try{require('fs').writeFileSync('/probe','x');console.log('writable')}catch(e){console.log(e.code)}").stdout.strip()
    check('root filesystem is read-only', ro == 'EROFS', ro)
    arena = podman('exec', gw_name, 'node', '-e', 'console.log(process.env.MALLOC_ARENA_MAX)').stdout.strip()
    check('MALLOC_ARENA_MAX=2 in the image', arena == '2', arena)

    # Security defaults: tokens at the gateway, mutual TLS between the processes.
    check('the gateway requires tokens (MYCEL_AUTH=required, a token file mounted)',
          gw_env.get('MYCEL_AUTH') == 'required' and 'MYCEL_API_TOKENS_FILE' in gw_env, gw_env.get('MYCEL_AUTH', ''))
    check('nodes and gateway use mutual TLS', all(
        'MYCEL_TLS_CA_FILE' in e for e in (gw_env, resolve_env(node_c, nodes[0]['pod'], {}))))
    status, body = http('POST', f'{url}/mycel/v1/upload', b'anonymous', headers={})
    check('an upload without a token is refused: 401', status == 401, f'{status} {body[:200]!r}')
    tokens = next((v for k, v in secrets.items() if 'admin-token' in v), None)
    if check('the generated Secret holds an admin token', tokens is not None):
        auth_headers['Authorization'] = f'Bearer {tokens["admin-token"].decode()}'

    # Data path through the gateway.
    files = {}
    for size in (0, 1000, 3 * 1024 * 1024 + 17):
        data = os.urandom(size)
        status, body = http('POST', f'{url}/mycel/v1/upload', data)
        ok = check(f'upload {size} bytes: 201', status == 201, f'{status} {body[:200]!r}')
        if ok:
            files[json.loads(body)['cid']] = hashlib.sha256(data).hexdigest()
    status, body = http('GET', f'{url}/mycel/v1/status')
    st = json.loads(body) if status == 200 else {}
    check('status lists every node', status == 200 and len(st.get('nodes', [])) == replicas, f'{status} {body[:300]!r}')
    # The nodes found each other through the headless Service (MYCEL_SEED_DNS) and gossip.
    addresses = sorted(n.get('address', '') for n in st.get('nodes', []) if n.get('state') == 'alive')
    check('every node is alive, known by its advertised stable name',
          addresses == sorted(f'{n["fqdn"]}:{named_port(node_c, "grpc")}' for n in nodes), ', '.join(addresses))

    def read_all():
        bad = []
        for cid, digest in files.items():
            s, b = http('GET', f'{url}/ipfs/{cid}')
            if s != 200 or hashlib.sha256(b).hexdigest() != digest:
                bad.append(f'{cid}: {s}')
        return bad

    bad = read_all()
    check('download returns every byte', not bad, '; '.join(bad))
    # Pins live on the nodes: the gateway calls their public API with its own token over TLS.
    first = next(iter(files), None)
    status, body = http('POST', f'{url}/api/v0/pin/add?arg={first}')
    check('pin/add through the nodes\' API (gateway token, TLS): 200', status == 200, f'{status} {body[:200]!r}')

    # A node dies (SIGKILL): R=3, W=2 keep reads and writes working.
    victim = nodes[1]
    podman('kill', '-s', 'KILL', victim['cname'])
    bad = read_all()
    check(f'with {victim["pod"]} killed, every file reads back', not bad, '; '.join(bad))
    data = os.urandom(2 * 1024 * 1024)
    status, body = http('POST', f'{url}/mycel/v1/upload', data)
    if check(f'with {victim["pod"]} killed, an upload still reaches W', status == 201, f'{status} {body[:200]!r}'):
        files[json.loads(body)['cid']] = hashlib.sha256(data).hexdigest()

    # It comes back with its volume; everything reads back.
    podman('start', victim['cname'])
    check(f'{victim["pod"]} is ready again after restart',
          wait_for(lambda: probe_ok(victim['cname'], node_c, node_c['readinessProbe']), 60))
    bad = read_all()
    check('after the restart every file reads back', not bad, '; '.join(bad))

    # SIGTERM: Node is PID 1 and drains; exit 0 well inside the grace period.
    grace = gtmpl['spec']['terminationGracePeriodSeconds']
    ok, detail = stop_and_check(gw_name, min(grace, 15))
    check('gateway exits 0 promptly on SIGTERM', ok, detail)
    for n in nodes:
        ok, detail = stop_and_check(n['cname'], min(tmpl['spec']['terminationGracePeriodSeconds'], 15))
        check(f'{n["pod"]} exits 0 promptly on SIGTERM', ok, detail)


def cleanup():
    for c in reversed(created['containers']):
        podman('rm', '-f', '-t', '0', c, check_rc=False)
    for v in created['volumes']:
        podman('volume', 'rm', '-f', v, check_rc=False)
    if created['network']:
        podman('network', 'rm', '-f', created['network'], check_rc=False)
    for d in created['dirs']:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    print(f'chart-e2e: {IMAGE}, network {NET}')
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any error is a failed check, then cleanup
        check('chart-e2e ran to the end', False, f'{type(e).__name__}: {e}')
        for c in created['containers']:
            logs = podman('logs', '--tail', '15', c, check_rc=False)
            print(f'--- {c}\n{logs.stdout}{logs.stderr}')
    finally:
        cleanup()
    print(f'chart-e2e: {passed} passed, {failed} failed')
    if RESULTS:
        with open(RESULTS, 'a') as f:
            f.write(f'chart-e2e passed {passed} failed {failed}\n')
    sys.exit(1 if failed else 0)
