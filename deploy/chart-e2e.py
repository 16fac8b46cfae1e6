#!/usr/bin/env python3
"""Rendered-chart end-to-end test: run what charts/mycel renders as real containers (`make chart-e2e`,
part of `make test`).

usage: HELM=... IMAGE=localhost/mycel:0.1.0 deploy/chart-e2e.py [RESULTS_FILE]

1. `helm template` the chart with its default values (only the image is set).
2. Translate the workloads into containers on a private podman network, as the kubelet would run
   them: one container per StatefulSet ordinal and per Deployment replica, with the rendered
   command, args, env (values, downward-API fields, Secret and ConfigMap keys), securityContext
   (user, read-only root filesystem, dropped capabilities, no-new-privileges) and volumes (claims and
   emptyDirs as named volumes, Secrets and ConfigMaps as read-only files; nothing else writable).
   Cluster DNS is aardvark-dns: every pod answers to its StatefulSet name
   (<pod>.<headless>.<ns>.svc.cluster.local) and every Service name resolves to the pods it selects
   (a headless Service to all of them: seeds by DNS work), with Kubernetes' search path and ndots.
3. Check the code reads every MYCEL_* variable the chart sets, the probes answer inside each
   container, the security defaults (tokens at the gateway and on the nodes' API, mutual TLS
   between the processes; an upload without a token is 401), then upload with the generated admin
   token and download through a gateway, pin over the nodes' API, SIGKILL a node, read everything
   back and upload again (W=2 of R=3), restart it (new address, same name and volume), run the
   chart's own `helm test` pod, and stop every container with SIGTERM inside its grace period.

Prints one line per check and, with RESULTS_FILE, appends "chart-e2e passed N failed N" to it.
Everything created carries the label io.mycel.e2e=chart-e2e-<pid> and is removed at the end, also
what earlier runs that were killed left behind.
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import Checks, GaveUp, healthy, http, podman, remove_stale, running, unreadable, wait_for  # noqa: E402

try:
    import yaml
except ImportError:
    sys.exit('chart-e2e: needs PyYAML (make host-deps installs it)')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELM = os.environ['HELM']
IMAGE = os.environ['IMAGE']
RESULTS = sys.argv[1] if len(sys.argv) > 1 else None
RUN_ID = f'chart-e2e-{os.getpid()}'
LABEL = 'io.mycel.e2e'
NS = 'mycel-e2e'
RELEASE = 'mycel'
NET = f'mycel-e2e-{os.getpid()}'
PREFIX = f'mycel-e2e-{os.getpid()}-'
DOMAIN = 'cluster.local'
t = Checks('chart-e2e')
created = {'containers': [], 'volumes': [], 'network': None, 'dirs': []}


def render():
    repo, tag = IMAGE.rsplit(':', 1)
    out = subprocess.run(
        [HELM, 'template', RELEASE, os.path.join(ROOT, 'charts/mycel'), '--namespace', NS,
         '--kube-version', '1.34.0', '--set', f'image.repository={repo}', '--set', f'image.tag={tag}',
         '--set', 'image.pullPolicy=Never'],
        capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


class Pod:
    """One pod of a rendered workload, run as one podman container."""

    def __init__(self, docs, name, template, ip, hostname=None, subdomain=None, claims=()):
        self.docs = docs
        self.name = name
        self.meta = template.get('metadata', {})
        self.spec = template['spec']
        self.container = self.spec['containers'][0]
        self.labels = dict(self.meta.get('labels', {}))
        self.ip = ip
        self.hostname = hostname or name
        self.subdomain = subdomain
        self.claims = set(claims)
        self.cname = PREFIX + name
        self.volumes = {}

    @property
    def fqdn(self):
        return f'{self.hostname}.{self.subdomain}.{NS}.svc.{DOMAIN}' if self.subdomain else None

    def env(self):
        env = {}
        for src in self.container.get('envFrom', []):
            data = self._source(src)
            env.update({src.get('prefix', '') + k: v for k, v in data.items()})
        for e in self.container.get('env', []):
            if 'value' in e:
                # The kubelet expands $(VAR) with variables defined earlier in the list.
                env[e['name']] = re.sub(r'\$\(([A-Za-z_][A-Za-z0-9_]*)\)',
                                        lambda m: env.get(m.group(1), m.group(0)), str(e['value']))
                continue
            ref = e.get('valueFrom', {})
            if 'fieldRef' in ref:
                env[e['name']] = self._field(ref['fieldRef']['fieldPath'])
            elif 'secretKeyRef' in ref or 'configMapKeyRef' in ref:
                key_ref = ref.get('secretKeyRef') or ref.get('configMapKeyRef')
                kind = 'secretRef' if 'secretKeyRef' in ref else 'configMapRef'
                data = self._source({kind: key_ref})
                if key_ref['key'] not in data and not key_ref.get('optional'):
                    raise RuntimeError(f'{self.name}: {e["name"]} refers to a missing key {key_ref}')
                if key_ref['key'] in data:
                    env[e['name']] = data[key_ref['key']]
            else:
                raise RuntimeError(f'{self.name}: chart-e2e cannot resolve env {e}; teach deploy/chart-e2e.py')
        return env

    def _field(self, path):
        if path == 'metadata.name':
            return self.name
        if path == 'metadata.namespace':
            return NS
        if path == 'status.podIP':
            return self.ip
        if path in ('spec.nodeName', 'status.hostIP'):
            return 'chart-e2e-host' if path == 'spec.nodeName' else self.ip
        if path.startswith("metadata.labels['"):
            # The kubelet gives an empty string for a label the pod does not carry.
            return self.labels.get(path[len("metadata.labels['"):-2], '')
        raise RuntimeError(f'{self.name}: unsupported fieldRef {path}')

    def _source(self, src):
        """Data of a rendered ConfigMap or Secret ({configMapRef|secretRef: {name}}), decoded."""
        kind, ref = ('Secret', src['secretRef']) if 'secretRef' in src else ('ConfigMap', src['configMapRef'])
        obj = next((d for d in self.docs if d['kind'] == kind and d['metadata']['name'] == ref['name']), None)
        if obj is None:
            if ref.get('optional'):
                return {}
            raise RuntimeError(f'{self.name}: {kind} {ref["name"]} is not rendered by the chart')
        data = {k: base64.b64decode(v).decode() for k, v in obj.get('data', {}).items()} if kind == 'Secret' \
            else dict(obj.get('data', {}))
        data.update(obj.get('stringData', {}))
        return data

    def volume_flags(self):
        flags = []
        declared = {v['name']: v for v in self.spec.get('volumes', [])}
        for m in self.container.get('volumeMounts', []):
            ro = ':ro' if m.get('readOnly') else ''
            if m['name'] in self.claims:
                flags += ['-v', f'{self._named_volume(m["name"])}:{m["mountPath"]}{ro}']
                continue
            vol = declared.get(m['name'])
            if vol is None:
                raise RuntimeError(f'{self.name}: volume {m["name"]} is mounted but not declared by the pod')
            if 'emptyDir' in vol:
                if vol['emptyDir'].get('medium') == 'Memory':
                    flags += ['--tmpfs', f'{m["mountPath"]}:mode=1777']
                else:
                    flags += ['-v', f'{self._named_volume(m["name"])}:{m["mountPath"]}']
            elif 'configMap' in vol or 'secret' in vol:
                src = {'configMapRef': {'name': vol['configMap']['name']}} if 'configMap' in vol \
                    else {'secretRef': {'name': vol['secret']['secretName']}}
                # As the kubelet projects them: only the listed items (all keys without a list), each
                # with defaultMode, owned by the pod's fsGroup so a non-root user reads a 0440 file.
                source = vol.get('configMap') or vol.get('secret')
                data = self._source(src)
                items = source.get('items') or [{'key': k, 'path': k} for k in data]
                mode = source.get('defaultMode', 0o644)
                group = self.spec.get('securityContext', {}).get('fsGroup', 0)
                d = tempfile.mkdtemp(prefix=PREFIX)
                created['dirs'].append(d)
                os.chmod(d, 0o755)
                for item in items:
                    path = os.path.join(d, item['path'])
                    with open(path, 'w') as f:
                        f.write(data[item['key']])
                    os.chown(path, 0, group)
                    os.chmod(path, item.get('mode', mode))
                flags += ['-v', f'{d}:{m["mountPath"]}:ro']
            else:
                raise RuntimeError(f'{self.name}: chart-e2e cannot emulate volume {vol}; teach deploy/chart-e2e.py')
        return flags

    def _named_volume(self, name):
        if name not in self.volumes:
            vol = f'{PREFIX}{name}-{self.name}'
            podman('volume', 'create', '--label', f'{LABEL}={RUN_ID}', vol)
            created['volumes'].append(vol)
            self.volumes[name] = vol
        return self.volumes[name]

    def security_flags(self):
        psc = self.spec.get('securityContext', {})
        sc = self.container.get('securityContext', {})
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

    def start(self, aliases, publish=()):
        args = ['run', '-d', '--name', self.cname, '--label', f'{LABEL}={RUN_ID}', '--hostname', self.hostname,
                '--network', NET, '--ip', self.ip,
                # Kubernetes' resolv.conf for a pod in NS: search path and ndots:5.
                '--dns-search', f'{NS}.svc.{DOMAIN}', '--dns-search', f'svc.{DOMAIN}', '--dns-search', DOMAIN,
                '--dns-option', 'ndots:5',
                *[f'--network-alias={a}' for a in aliases], *self.security_flags(), *self.volume_flags()]
        for p in publish:
            args += ['-p', f'127.0.0.1::{p}']
        for k, v in self.env().items():
            args += ['-e', f'{k}={v}']
        command = self.container.get('command')
        if command:
            args += ['--entrypoint', json.dumps(command[:1])]
            rest = command[1:] + self.container.get('args', [])
        else:
            rest = self.container.get('args', [])
        podman(*args, '--pull=never', self.container['image'], *rest)
        created['containers'].append(self.cname)

    def port(self, name_or_number):
        if isinstance(name_or_number, int):
            return name_or_number
        for p in self.container.get('ports', []):
            if p['name'] == name_or_number:
                return p['containerPort']
        raise RuntimeError(f'{self.name}: no port named {name_or_number}')

    def probe_ok(self, probe):
        if not running(self.cname):
            raise GaveUp(self.cname)
        get = probe['httpGet']
        script = (f"fetch('http://127.0.0.1:{self.port(get['port'])}{get['path']}')"
                  ".then(r=>process.exit(r.status===200?0:1),()=>process.exit(2))")
        return podman('exec', self.cname, 'node', '-e', script, check_rc=False).returncode == 0

    def stop_and_check(self, budget_s):
        t0 = time.time()
        podman('stop', '-t', str(budget_s + 20), self.cname, timeout=budget_s + 60)
        took = time.time() - t0
        code = podman('inspect', '--format', '{{.State.ExitCode}}', self.cname).stdout.strip()
        return code == '0' and took < budget_s, f'exit {code} after {took:.1f}s'


def selects(service, pod):
    sel = service['spec'].get('selector') or {}
    return bool(sel) and all(pod.labels.get(k) == v for k, v in sel.items())


def code_env_keys():
    """The MYCEL_* names each role reads, from the image's own code."""
    script = ("import('/app/services/core/dist/index.js').then(m=>console.log(JSON.stringify("
              "{node:m.NODE_ENV_KEYS,gateway:m.GATEWAY_ENV_KEYS})))")
    out = podman('run', '--rm', '--pull=never', '--entrypoint', '["node"]', IMAGE, '-e', script).stdout
    return json.loads(out)


def main():
    docs = render()
    sts = next(d for d in docs if d['kind'] == 'StatefulSet')
    dep = next(d for d in docs if d['kind'] == 'Deployment')
    services = [d for d in docs if d['kind'] == 'Service']
    tests = [d for d in docs if d['kind'] == 'Pod' and d['metadata'].get('annotations', {}).get('helm.sh/hook') == 'test']
    headless = next(s for s in services if s['spec'].get('clusterIP') == 'None')
    t.check('StatefulSet serviceName is the headless Service', sts['spec']['serviceName'] == headless['metadata']['name'])

    keys = code_env_keys()
    for role, tmpl in (('node', sts), ('gateway', dep)):
        names = [e['name'] for e in tmpl['spec']['template']['spec']['containers'][0].get('env', [])]
        unknown = [n for n in names if n.startswith('MYCEL_') and n not in keys[role]]
        t.check(f'the {role} code reads every MYCEL_* variable the chart sets', not unknown, ', '.join(unknown))

    podman('network', 'create', '--label', f'{LABEL}={RUN_ID}', NET)
    created['network'] = NET
    subnet = json.loads(podman('network', 'inspect', NET).stdout)[0]['subnets'][0]['subnet']
    base = subnet.split('/')[0].rsplit('.', 1)[0]

    sts_name = sts['metadata']['name']
    claims = [c['metadata']['name'] for c in sts['spec']['volumeClaimTemplates']]
    nodes = []
    for i in range(sts['spec']['replicas']):
        tmpl = json.loads(json.dumps(sts['spec']['template']))
        tmpl['metadata'].setdefault('labels', {})['statefulset.kubernetes.io/pod-name'] = f'{sts_name}-{i}'
        nodes.append(Pod(docs, f'{sts_name}-{i}', tmpl, f'{base}.{10 + i}', subdomain=sts['spec']['serviceName'],
                         claims=claims))
    gateways = [Pod(docs, f'{dep["metadata"]["name"]}-{i}', dep['spec']['template'], f'{base}.{50 + i}')
                for i in range(dep['spec']['replicas'])]
    testers = [Pod(docs, d['metadata']['name'], d, f'{base}.{90 + i}') for i, d in enumerate(tests)]

    def aliases(pod):
        names = [pod.fqdn] if pod.fqdn else []
        return names + [f'{s["metadata"]["name"]}.{NS}.svc.{DOMAIN}' for s in services if selects(s, pod)]

    # A Service becomes its name in DNS (round robin over the pods it selects): every Service must
    # select pods, and a ClusterIP one must not remap ports, which DNS cannot do.
    for s in services:
        chosen = [p for p in nodes + gateways if selects(s, p)]
        t.check(f'Service {s["metadata"]["name"]} selects pods of the chart', bool(chosen))
        if chosen and s['spec'].get('clusterIP') != 'None':
            remapped = [f'{p["port"]} -> {chosen[0].port(p.get("targetPort", p["port"]))}' for p in s['spec']['ports']
                        if chosen[0].port(p.get('targetPort', p['port'])) != p['port']]
            t.check(f'Service {s["metadata"]["name"]} targets the same container ports', not remapped,
                    f'{", ".join(remapped)}: chart-e2e cannot remap ports')

    for n in nodes:
        n.start(aliases(n))
    http_port = gateways[0].port('http')
    for g in gateways:
        g.start(aliases(g), publish=[http_port])
    host_port = podman('port', gateways[0].cname, f'{http_port}/tcp').stdout.strip().rsplit(':', 1)[1]
    url = f'http://127.0.0.1:{host_port}'

    # Probes exactly as rendered: every node, then the gateways (ready once W nodes answer).
    node_c = nodes[0].container
    for n in nodes:
        for kind in ('startupProbe', 'livenessProbe', 'readinessProbe'):
            if kind in node_c:
                t.check(f'{n.name}: {kind} {node_c[kind]["httpGet"]["path"]} answers 200',
                        wait_for(lambda n=n, kind=kind: n.probe_ok(node_c[kind]), 180))
    for g in gateways:
        for kind in ('livenessProbe', 'readinessProbe'):
            t.check(f'{g.name}: {kind} {g.container[kind]["httpGet"]["path"]} answers 200',
                    wait_for(lambda g=g, kind=kind: g.probe_ok(g.container[kind]), 180))

    # Cluster DNS: the headless Service name answers every node (what seeding by DNS resolves).
    lookup = ("require('dns').promises.lookup(process.argv[1],{all:true})"
              ".then(a=>console.log(a.map(x=>x.address).sort().join(',')))")
    got = podman('exec', gateways[0].cname, 'node', '-e', lookup, headless['metadata']['name']).stdout.strip()
    t.check('the headless Service name resolves to every node', got == ','.join(sorted(n.ip for n in nodes)), got)

    # Hardening holds at run time.
    uid = podman('exec', nodes[0].cname, 'node', '-e', 'console.log(process.getuid())').stdout.strip()
    t.check('node runs as uid 1000', uid == '1000', uid)
    ro = podman('exec', nodes[0].cname, 'node', '-e',
                "try{require('fs').writeFileSync('/probe','x');console.log('writable')}catch(e){console.log(e.code)}").stdout.strip()
    t.check('root filesystem is read-only', ro == 'EROFS', ro)
    arena = podman('exec', gateways[0].cname, 'node', '-e', 'console.log(process.env.MALLOC_ARENA_MAX)').stdout.strip()
    t.check('MALLOC_ARENA_MAX=2 in the image', arena == '2', arena)

    # Security defaults: tokens at the gateway and on the nodes' API, mutual TLS between the processes.
    gw_env, node_env = gateways[0].env(), nodes[0].env()
    t.check('the gateway requires tokens (MYCEL_AUTH=required, a token file mounted)',
            gw_env.get('MYCEL_AUTH') == 'required' and 'MYCEL_API_TOKENS_FILE' in gw_env, gw_env.get('MYCEL_AUTH', ''))
    t.check('nodes and gateways use mutual TLS', all('MYCEL_TLS_CA_FILE' in e for e in (gw_env, node_env)))
    status, body = http('POST', f'{url}/mycel/v1/upload', b'anonymous')
    t.check('an upload without a token is refused: 401', status == 401, f'{status} {body[:200]!r}')
    secret = next(d for d in docs if d['kind'] == 'Secret' and 'admin-token' in d.get('data', {}))
    token = base64.b64decode(secret['data']['admin-token']).decode()
    admin = {'Authorization': f'Bearer {token}'}

    # Data path through the gateway, with the generated admin token.
    auth = admin
    files = {}
    for size in (0, 1000, 3 * 1024 * 1024 + 17):
        data = os.urandom(size)
        status, body = http('POST', f'{url}/mycel/v1/upload', data, headers=auth)
        if t.check(f'upload {size} bytes: 201', status == 201, f'{status} {body[:200]!r}'):
            files[json.loads(body)['cid']] = hashlib.sha256(data).hexdigest()
    status, body = http('GET', f'{url}/mycel/v1/status', headers=admin)
    st = json.loads(body) if status == 200 else {}
    t.check('status lists every node, each up', status == 200 and len(st.get('nodes', [])) == len(nodes)
            and all(healthy(n) for n in st['nodes']), f'{status} {body[:300]!r}')
    # The nodes found each other through the headless Service (MYCEL_SEED_DNS) and gossip.
    addresses = sorted(n.get('address', '') for n in st.get('nodes', []) if healthy(n))
    t.check('every node is alive, known by its advertised stable name',
            addresses == sorted(f'{n.fqdn}:{n.port("grpc")}' for n in nodes), ', '.join(addresses))

    bad = unreadable(url, files)
    t.check('download returns every byte', not bad, '; '.join(bad))

    # Pins live on the nodes: the gateway calls their public API with its own token over TLS.
    status, body = http('POST', f'{url}/api/v0/pin/add?arg={next(iter(files))}', headers=auth)
    t.check("pin/add through the nodes' API (gateway token, TLS): 200", status == 200, f'{status} {body[:200]!r}')

    # The nodes' public gRPC API (TLS with the cluster CA) takes tokens from the Secret's token
    # file: the CLI in a node container is refused without one (exit 4) and served with the admin token.
    def stat(token):
        env = ['-e', f'MYCEL_TOKEN={token}'] if token else []
        return podman('exec', *env, nodes[0].cname, 'node', '/app/services/cli/dist/bin.js', 'stat',
                      next(iter(files)), '--node', f'127.0.0.1:{nodes[0].port("grpc")}',
                      '--ca', node_env['MYCEL_TLS_CA_FILE'], '--tls-server-name', node_env['MYCEL_TLS_SERVER_NAME'],
                      check_rc=False)
    r = stat(None)
    t.check("the nodes' API refuses a client without a token (exit 4)", r.returncode == 4,
            f'exit {r.returncode}: {(r.stdout + r.stderr)[-300:]}')
    r = stat(token)
    t.check("the nodes' API serves the admin token", r.returncode == 0, f'exit {r.returncode}: {(r.stdout + r.stderr)[-300:]}')

    # A node dies (SIGKILL): R=3, W=2 keep reads and writes working.
    victim = nodes[1]
    podman('kill', '-s', 'KILL', victim.cname)
    bad = unreadable(url, files)
    t.check(f'with {victim.name} killed, every file reads back', not bad, '; '.join(bad))
    data = os.urandom(2 * 1024 * 1024)
    status, body = http('POST', f'{url}/mycel/v1/upload', data, headers=auth)
    if t.check(f'with {victim.name} killed, an upload still reaches W', status == 201, f'{status} {body[:200]!r}'):
        files[json.loads(body)['cid']] = hashlib.sha256(data).hexdigest()

    # It comes back under its name, with its volume, at a new address (as a recreated pod does).
    podman('rm', '-f', '-t', '0', victim.cname)
    created['containers'].remove(victim.cname)
    victim.ip = f'{base}.{30 + 1}'
    victim.start(aliases(victim))
    t.check(f'{victim.name} is ready again at a new address',
            wait_for(lambda: victim.probe_ok(node_c['readinessProbe']), 180))
    t.check('the gateway reaches it under its name again', wait_for(
        lambda: all(healthy(n) for n in json.loads(http('GET', f'{url}/mycel/v1/status', headers=admin)[1])['nodes']), 180))
    bad = unreadable(url, files)
    t.check('after the restart every file reads back', not bad, '; '.join(bad))

    # The chart's own `helm test` pod, run as it would be after an install.
    for tp in testers:
        tp.start([])
        wait_for(lambda tp=tp: not running(tp.cname), 300, 1)
        code = podman('inspect', '--format', '{{.State.ExitCode}}', tp.cname).stdout.strip()
        logs = podman('logs', tp.cname, check_rc=False)
        t.check(f'helm test pod {tp.name} passes', code == '0', f'exit {code}: {(logs.stdout + logs.stderr)[-600:]}')

    # SIGTERM: Node is PID 1 and drains; exit 0 inside the grace period, before Kubernetes would
    # SIGKILL it (a gateway's preStop sleep runs first and counts against its grace period). The
    # time taken is reported: it varies with the machine's load, the bound does not.
    for pods, tmpl in ((gateways, dep), (nodes, sts)):
        spec = tmpl['spec']['template']['spec']
        pre = spec['containers'][0].get('lifecycle', {}).get('preStop', {}).get('sleep', {}).get('seconds', 0)
        budget = spec['terminationGracePeriodSeconds'] - pre
        for p in pods:
            ok, detail = p.stop_and_check(budget)
            t.check(f'{p.name} exits 0 on SIGTERM inside its grace period ({budget} s; {detail})', ok, detail)


def cleanup():
    for c in reversed(created['containers']):
        podman('rm', '-f', '-t', '0', c, check_rc=False)
    for v in created['volumes']:
        podman('volume', 'rm', '-f', v, check_rc=False)
    if created['network']:
        podman('network', 'rm', '-f', created['network'], check_rc=False)
    for d in created['dirs']:
        shutil.rmtree(d, ignore_errors=True)
    left = podman('ps', '-a', '-q', '--filter', f'label={LABEL}={RUN_ID}').stdout.split()
    left += podman('volume', 'ls', '-q', '--filter', f'label={LABEL}={RUN_ID}').stdout.split()
    t.check('nothing of the run is left (containers, volumes, network)', not left, ' '.join(left))


if __name__ == '__main__':
    sys.stdout.reconfigure(line_buffering=True)
    print(f'chart-e2e: {IMAGE}, network {NET}')
    remove_stale(LABEL, 'chart-e2e-')
    try:
        main()
    except Exception as e:  # noqa: BLE001 - any error is a failed check, then cleanup
        t.check('chart-e2e ran to the end', False, f'{type(e).__name__}: {e}')
        for c in created['containers']:
            logs = podman('logs', '--tail', '15', c, check_rc=False)
            print(f'--- {c}\n{logs.stdout}{logs.stderr}')
    finally:
        cleanup()
    t.finish(RESULTS)
