import { spawn } from 'node:child_process'
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { log, must, type RunOptions, type RunResult, run, seconds, waitFor } from './exec.js'

/**
 * A real single-node Kubernetes cluster on this machine, offline: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler, kubelet with Debian's containerd and runc, kube-proxy
 * (iptables), CoreDNS and the local-path provisioner. Everything runs inside a network namespace
 * of its own whose only link is a veth pair with both ends inside it, so no packet leaves the
 * machine and nothing collides with the host's ports. Daemons are detached processes (they outlive
 * the command that started them, for `make k8s-up`); their pids, the state folder and the owner
 * are recorded in RUN_DIR/state.json so `down` finds everything, even after a crash.
 *
 * Host paths it touches, all removed by down(): the network namespace NETNS, RUN_DIR (sockets,
 * containerd state, pod network namespaces, runc state), the cgroup CGROUP_ROOT in every
 * hierarchy, /var/log/containers links to its pods, and CNI results named after NETNS. Data (etcd,
 * containerd's images, kubelet, volumes, logs) lives in the state folder.
 */
export const NETNS = 'mycel-k8s'
export const RUN_DIR = '/run/mycel-k8s'
const CGROUP_ROOT = 'mycel-k8s'
const NODE_NAME = 'mycel-k8s-node'
const NODE_IP = '10.200.0.1'
const POD_CIDR = '10.244.0.0/24'
const CLUSTER_CIDR = '10.244.0.0/16'
const SVC_CIDR = '10.96.0.0/24'
const DNS_IP = '10.96.0.10'
const SOCK = `${RUN_DIR}/containerd/containerd.sock`
const STATE_FILE = `${RUN_DIR}/state.json`
/** Outside RUN_DIR, which down() removes. */
const LOCK_FILE = '/run/mycel-k8s.lock'
/** The local-path provisioner's helper pods (mkdir/rm of volume folders) need a shell: the base image has one. */
export const HELPER_IMAGE = 'localhost/node:24-bookworm-slim'

export interface ClusterPaths {
  /** Folder with bin/, images/, local-path-storage.yaml and tools.json (tests/k8s/build-tools.sh). */
  tools: string
  /** helm binary. */
  helm: string
  /** Data folder of this cluster (git-ignored); wiped by the next up(). */
  state: string
}

interface ToolsInfo {
  kubernetes: string
  etcd: string
  coredns: string
  localPath: string
  images: { pause: string; coredns: string }
}

interface State {
  /** The test process that owns the cluster, or null for one started by `make k8s-up`. */
  owner: number | null
  stateDir: string
  pids: Record<string, number>
  startedAt: string
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

export class Cluster {
  readonly kubeconfig: string
  readonly tools: ToolsInfo
  private readonly bin: string
  private readonly logs: string

  constructor(readonly paths: ClusterPaths) {
    this.bin = join(paths.tools, 'bin')
    this.logs = join(paths.state, 'logs')
    this.kubeconfig = join(paths.state, 'admin.kubeconfig')
    const info = join(paths.tools, 'tools.json')
    if (!existsSync(info)) throw new Error(`no ${info}: build the tools first (make k8s-tools)`)
    this.tools = JSON.parse(readFileSync(info, 'utf8')) as ToolsInfo
  }

  /** Runs a command inside the cluster's network namespace. */
  ns(cmd: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run('nsenter', [`--net=/run/netns/${NETNS}`, '--', cmd, ...args], opts)
  }

  kubectl(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.ns(join(this.bin, 'kubectl'), ['--kubeconfig', this.kubeconfig, ...args], opts)
  }

  /** kubectl that throws on a non-zero exit and returns stdout. */
  async k(args: readonly string[], opts?: RunOptions): Promise<string> {
    const r = await this.kubectl(args, opts)
    if (r.code !== 0)
      throw new Error(`kubectl ${args.join(' ')}: ${(r.stderr || r.stdout).trim().slice(-1500)}`)
    return r.stdout
  }

  async kjson<T>(args: readonly string[]): Promise<T> {
    return JSON.parse(await this.k([...args, '-o', 'json'])) as T
  }

  helm(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return this.ns(this.paths.helm, ['--kubeconfig', this.kubeconfig, ...args], opts)
  }

  /** The environment a person needs to use kubectl and helm against this cluster. */
  get envFile(): string {
    return `${RUN_DIR}/env`
  }

  // ---------------------------------------------------------------------------------------------
  // up

  /**
   * Starts the cluster. A cluster left by an earlier run is torn down first, unless the test that
   * owns it is still running, which is refused.
   * @param owner the pid of the test that owns the cluster, or null (make k8s-up)
   */
  /** Returns how long the start took, from after the reclaim. */
  async up(owner: number | null): Promise<number> {
    await Cluster.reclaim()
    const t0 = Date.now()
    // Nothing of an earlier cluster is reused (down() has unmounted everything under it).
    rmSync(this.paths.state, { recursive: true, force: true })
    mkdirSync(this.logs, { recursive: true })
    mkdirSync(RUN_DIR, { recursive: true })
    const state: State = { owner, stateDir: this.paths.state, pids: {}, startedAt: new Date().toISOString() }
    const save = () => writeFileSync(STATE_FILE, JSON.stringify(state, null, 2))
    save()

    await this.netns()
    this.cgroups()
    await this.pki()
    this.configs()

    state.pids.containerd = this.daemon('containerd', [
      'containerd',
      '--config',
      join(this.paths.state, 'containerd.toml'),
    ])
    save()
    await waitFor('containerd', async () => (await this.ctr(['version'])).code === 0, 60_000, 200)
    for (const image of ['pause', 'coredns']) {
      await must(
        'ctr',
        [
          '--address',
          SOCK,
          '-n',
          'k8s.io',
          'images',
          'import',
          join(this.paths.tools, 'images', `${image}.tar`),
        ],
        { timeoutMs: 300_000 },
      )
    }

    const b = (name: string) => join(this.bin, name)
    const p = (name: string) => join(this.paths.state, 'pki', name)
    state.pids.etcd = this.daemon('etcd', [
      b('etcd'),
      '--name=default',
      `--data-dir=${join(this.paths.state, 'etcd')}`,
      '--listen-client-urls=http://127.0.0.1:2379',
      '--advertise-client-urls=http://127.0.0.1:2379',
      '--listen-peer-urls=http://127.0.0.1:2380',
      '--initial-advertise-peer-urls=http://127.0.0.1:2380',
      '--initial-cluster=default=http://127.0.0.1:2380',
      '--listen-metrics-urls=http://127.0.0.1:2381',
      '--unsafe-no-fsync',
    ])
    state.pids.apiserver = this.daemon('kube-apiserver', [
      b('kube-apiserver'),
      '--etcd-servers=http://127.0.0.1:2379',
      '--bind-address=0.0.0.0',
      `--advertise-address=${NODE_IP}`,
      '--secure-port=6443',
      `--tls-cert-file=${p('apiserver.crt')}`,
      `--tls-private-key-file=${p('apiserver.key')}`,
      `--client-ca-file=${p('ca.crt')}`,
      `--kubelet-client-certificate=${p('kubelet-client.crt')}`,
      `--kubelet-client-key=${p('kubelet-client.key')}`,
      '--kubelet-preferred-address-types=InternalIP,Hostname',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${p('sa.pub')}`,
      `--service-account-signing-key-file=${p('sa.key')}`,
      `--service-cluster-ip-range=${SVC_CIDR}`,
      `--token-auth-file=${p('tokens.csv')}`,
      '--authorization-mode=Node,RBAC',
      '--enable-admission-plugins=NodeRestriction',
      '--allow-privileged=true',
    ])
    save()
    await waitFor(
      'kube-apiserver /readyz',
      async () => (await this.kubectl(['get', '--raw', '/readyz'])).code === 0,
      180_000,
      500,
    )
    log(`kube-apiserver ready after ${seconds(Date.now() - t0)}`)

    const admin = this.kubeconfig
    state.pids.controllerManager = this.daemon('kube-controller-manager', [
      b('kube-controller-manager'),
      `--kubeconfig=${admin}`,
      `--authentication-kubeconfig=${admin}`,
      `--authorization-kubeconfig=${admin}`,
      '--leader-elect=false',
      `--service-account-private-key-file=${p('sa.key')}`,
      `--root-ca-file=${p('ca.crt')}`,
      `--cluster-signing-cert-file=${p('ca.crt')}`,
      `--cluster-signing-key-file=${p('ca.key')}`,
      '--use-service-account-credentials=true',
      '--bind-address=127.0.0.1',
      '--secure-port=10257',
      '--allocate-node-cidrs=true',
      `--cluster-cidr=${CLUSTER_CIDR}`,
      '--node-cidr-mask-size=24',
      `--service-cluster-ip-range=${SVC_CIDR}`,
    ])
    state.pids.scheduler = this.daemon('kube-scheduler', [
      b('kube-scheduler'),
      `--kubeconfig=${admin}`,
      `--authentication-kubeconfig=${admin}`,
      `--authorization-kubeconfig=${admin}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      '--secure-port=10259',
    ])
    state.pids.kubelet = this.daemon('kubelet', [
      b('kubelet'),
      `--config=${join(this.paths.state, 'kubelet.yaml')}`,
      `--kubeconfig=${join(this.paths.state, 'kubelet.kubeconfig')}`,
      `--hostname-override=${NODE_NAME}`,
      `--node-ip=${NODE_IP}`,
      `--root-dir=${join(this.paths.state, 'kubelet')}`,
    ])
    state.pids.kubeProxy = this.daemon('kube-proxy', [
      b('kube-proxy'),
      `--config=${join(this.paths.state, 'kube-proxy.yaml')}`,
    ])
    save()
    await waitFor(
      `node ${NODE_NAME} Ready`,
      async () => {
        const r = await this.kubectl([
          'get',
          'node',
          NODE_NAME,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ])
        return r.stdout.trim() === 'True'
      },
      300_000,
    )
    log(`node ${NODE_NAME} Ready after ${seconds(Date.now() - t0)}`)

    await this.k(['apply', '-f', '-'], { input: this.corednsManifest() })
    await this.localPath(state)
    save()
    await this.k(['-n', 'kube-system', 'rollout', 'status', 'deployment/coredns', '--timeout=300s'], {
      timeoutMs: 320_000,
    })
    writeFileSync(
      this.envFile,
      `KUBECONFIG=${this.kubeconfig}\nKUBECTL=${join(this.bin, 'kubectl')}\nHELM=${this.paths.helm}\nNETNS=${NETNS}\n`,
    )
    log(
      `cluster up in ${seconds(Date.now() - t0)} (Kubernetes ${this.tools.kubernetes}, CoreDNS ${this.tools.coredns})`,
    )
    return Date.now() - t0
  }

  /** Copies an image from podman's store into containerd, where the kubelet finds it (nothing is pulled). */
  async loadImage(ref: string): Promise<void> {
    const t0 = Date.now()
    const tar = join(this.paths.state, 'image.tar')
    await must('podman', ['save', '--format', 'docker-archive', '-o', tar, ref], { timeoutMs: 300_000 })
    try {
      await must('ctr', ['--address', SOCK, '-n', 'k8s.io', 'images', 'import', tar], { timeoutMs: 300_000 })
    } finally {
      rmSync(tar, { force: true })
    }
    log(`image ${ref} loaded into containerd in ${seconds(Date.now() - t0)}`)
  }

  private ctr(args: readonly string[]): Promise<RunResult> {
    return run('ctr', ['--address', SOCK, ...args], { timeoutMs: 30_000 })
  }

  /** Starts a detached daemon in the namespace, output appended to logs/NAME.log; returns its pid. */
  private daemon(name: string, argv: readonly string[]): number {
    const out = openSync(join(this.logs, `${name}.log`), 'a')
    const child = spawn('nsenter', [`--net=/run/netns/${NETNS}`, '--', ...argv], {
      detached: true,
      stdio: ['ignore', out, out],
    })
    closeSync(out)
    child.unref()
    if (child.pid === undefined) throw new Error(`could not start ${name}`)
    return child.pid
  }

  private async netns(): Promise<void> {
    const script = `set -e
ip netns add ${NETNS}
x() { ip netns exec ${NETNS} "$@"; }
x ip link set lo up
# Both ends of the pair stay inside the namespace: the node has an address, but no way out.
x ip link add node0 type veth peer name node0p
x ip addr add ${NODE_IP}/24 dev node0
x ip link set node0 up
x ip link set node0p up
# The node itself (kubelet probes, apiserver) reaches ClusterIPs through kube-proxy's rules.
x ip route add ${SVC_CIDR} dev node0 src ${NODE_IP}
x sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1`
    await must('bash', ['-c', script])
  }

  /**
   * The kubelet's cgroup root (cgroupfs driver, cgroup v1 here): pods live under it, so teardown
   * touches only this cluster's cgroups. The kubelet requires it to exist in every hierarchy.
   */
  private cgroups(): void {
    for (const h of cgroupHierarchies()) {
      const dir = join(h, CGROUP_ROOT)
      mkdirSync(dir, { recursive: true })
      if (h.endsWith('/cpuset')) {
        for (const f of ['cpuset.cpus', 'cpuset.mems']) {
          if (readFileSync(join(dir, f), 'utf8').trim() === '')
            writeFileSync(join(dir, f), readFileSync(join(h, f)))
        }
      }
    }
  }

  private async pki(): Promise<void> {
    const dir = join(this.paths.state, 'pki')
    mkdirSync(dir, { recursive: true })
    const script = `set -e
cd "${dir}"
openssl genrsa -out ca.key 2048 2>/dev/null
openssl req -x509 -new -nodes -key ca.key -subj "/CN=${NETNS}-ca" -days 30 -out ca.crt
cert() {
  openssl genrsa -out "$1.key" 2048 2>/dev/null
  openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
  printf '%b' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}
cert apiserver "/CN=kube-apiserver" "subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:${NODE_IP},IP:10.96.0.1\\nextendedKeyUsage=serverAuth\\n"
cert kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth\\n"
cert kubelet "/CN=${NODE_NAME}" "subjectAltName=DNS:${NODE_NAME},IP:${NODE_IP}\\nextendedKeyUsage=serverAuth\\n"
openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null`
    await must('bash', ['-c', script])
    const token = () => must('openssl', ['rand', '-hex', '16']).then((s) => s.trim())
    const [admin, kubelet, proxy] = [await token(), await token(), await token()]
    writeFileSync(
      join(dir, 'tokens.csv'),
      `${admin},admin,admin-uid,system:masters\n${kubelet},system:node:${NODE_NAME},node-uid,system:nodes\n${proxy},system:kube-proxy,proxy-uid\n`,
      { mode: 0o600 },
    )
    for (const [name, tok] of [
      ['admin', admin],
      ['kubelet', kubelet],
      ['proxy', proxy],
    ] as const) {
      const cfg = {
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [
          {
            name: NETNS,
            cluster: { server: `https://${NODE_IP}:6443`, 'certificate-authority': join(dir, 'ca.crt') },
          },
        ],
        users: [{ name, user: { token: tok } }],
        contexts: [{ name: NETNS, context: { cluster: NETNS, user: name } }],
        'current-context': NETNS,
      }
      writeFileSync(join(this.paths.state, `${name}.kubeconfig`), JSON.stringify(cfg, null, 2), {
        mode: 0o600,
      })
    }
  }

  private configs(): void {
    const s = this.paths.state
    const cniDir = join(s, 'cni')
    mkdirSync(cniDir, { recursive: true })
    mkdirSync(join(s, 'local-path'), { recursive: true })
    mkdirSync(join(s, 'pod-logs'), { recursive: true })
    writeFileSync(
      join(s, 'containerd.toml'),
      `version = 2
root = "${join(s, 'containerd-root')}"
state = "${RUN_DIR}/containerd"
[grpc]
  address = "${SOCK}"
[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "${this.tools.images.pause}"
    # Root here lacks CAP_SYS_RESOURCE: without this every pod sandbox fails with
    # "runc create failed: ... can't get final child's PID from pipe: EOF".
    restrict_oom_score_adj = true
    # Pod network namespaces under the state folder, not /run/netns, so teardown finds only ours.
    netns_mounts_under_state_dir = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
          BinaryName = "/usr/sbin/runc"
          Root = "${RUN_DIR}/runc"
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "${cniDir}"
  [plugins."io.containerd.internal.v1.opt"]
    path = "${join(s, 'containerd-opt')}"
`,
    )
    writeFileSync(
      join(cniDir, `10-${NETNS}.conflist`),
      JSON.stringify(
        {
          cniVersion: '0.4.0',
          name: NETNS,
          plugins: [
            {
              type: 'bridge',
              bridge: 'cni0',
              isGateway: true,
              ipMasq: false,
              hairpinMode: true,
              ipam: {
                type: 'host-local',
                dataDir: join(s, 'cni-ipam'),
                ranges: [[{ subnet: POD_CIDR, gateway: '10.244.0.1' }]],
                routes: [{ dst: '0.0.0.0/0' }],
              },
            },
            { type: 'portmap', capabilities: { portMappings: true } },
            { type: 'loopback' },
          ],
        },
        null,
        2,
      ),
    )
    // Pods with dnsPolicy Default get this; there is no upstream resolver (offline).
    writeFileSync(join(s, 'resolv.conf'), 'nameserver 127.0.0.1\n')
    const kubelet = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      // cgroup v1 (hybrid) without systemd as init.
      cgroupDriver: 'cgroupfs',
      cgroupRoot: `/${CGROUP_ROOT}`,
      failSwapOn: false,
      failCgroupV1: false,
      containerRuntimeEndpoint: `unix://${SOCK}`,
      address: NODE_IP,
      readOnlyPort: 0,
      healthzBindAddress: '127.0.0.1',
      clusterDomain: 'cluster.local',
      clusterDNS: [DNS_IP],
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: join(s, 'pki/ca.crt') },
      },
      authorization: { mode: 'Webhook' },
      tlsCertFile: join(s, 'pki/kubelet.crt'),
      tlsPrivateKeyFile: join(s, 'pki/kubelet.key'),
      resolvConf: join(s, 'resolv.conf'),
      podLogsDir: join(s, 'pod-logs'),
      serializeImagePulls: false,
      // No registry: an image removed by garbage collection could never come back.
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      // The disk is shared with the rest of the machine: evict only when it is really full.
      evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '1%', 'imagefs.available': '1%' },
    }
    writeFileSync(join(s, 'kubelet.yaml'), JSON.stringify(kubelet, null, 2))
    const proxy = {
      apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
      kind: 'KubeProxyConfiguration',
      clientConnection: { kubeconfig: join(s, 'proxy.kubeconfig') },
      mode: 'iptables',
      clusterCIDR: CLUSTER_CIDR,
      hostnameOverride: NODE_NAME,
      metricsBindAddress: '127.0.0.1:10249',
      healthzBindAddress: '127.0.0.1:10256',
      conntrack: { maxPerCore: 0 },
    }
    writeFileSync(join(s, 'kube-proxy.yaml'), JSON.stringify(proxy, null, 2))
  }

  private corednsManifest(): string {
    const corefile = `.:53 {
    errors
    health {
       lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
       pods insecure
       fallthrough in-addr.arpa ip6.arpa
       ttl 5
    }
    cache 5
    loadbalance
}
`
    const items = [
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'coredns', namespace: 'kube-system' } },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'system:coredns' },
        rules: [
          {
            apiGroups: [''],
            resources: ['endpoints', 'services', 'pods', 'namespaces'],
            verbs: ['list', 'watch'],
          },
          { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'system:coredns' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:coredns' },
        subjects: [{ kind: 'ServiceAccount', name: 'coredns', namespace: 'kube-system' }],
      },
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'coredns', namespace: 'kube-system' },
        data: { Corefile: corefile },
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'coredns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { 'k8s-app': 'kube-dns' } },
          template: {
            metadata: { labels: { 'k8s-app': 'kube-dns' } },
            spec: {
              serviceAccountName: 'coredns',
              dnsPolicy: 'Default',
              priorityClassName: 'system-cluster-critical',
              containers: [
                {
                  name: 'coredns',
                  image: this.tools.images.coredns,
                  imagePullPolicy: 'Never',
                  args: ['-conf', '/etc/coredns/Corefile'],
                  resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '170Mi' } },
                  volumeMounts: [{ name: 'config', mountPath: '/etc/coredns', readOnly: true }],
                  readinessProbe: { httpGet: { path: '/ready', port: 8181 }, periodSeconds: 2 },
                  livenessProbe: { httpGet: { path: '/health', port: 8080 }, periodSeconds: 10 },
                },
              ],
              volumes: [{ name: 'config', configMap: { name: 'coredns' } }],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'kube-dns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } },
        spec: {
          selector: { 'k8s-app': 'kube-dns' },
          clusterIP: DNS_IP,
          ports: [
            { name: 'dns', port: 53, protocol: 'UDP' },
            { name: 'dns-tcp', port: 53, protocol: 'TCP' },
          ],
        },
      },
    ]
    return JSON.stringify({ apiVersion: 'v1', kind: 'List', items })
  }

  /**
   * The local-path provisioner runs as a host process in the namespace (its upstream RBAC,
   * StorageClass `local-path` and ConfigMap applied, its Deployment left out: no image for it);
   * volumes are folders under the state folder.
   */
  private async localPath(state: State): Promise<void> {
    const upstream = readFileSync(join(this.paths.tools, 'local-path-storage.yaml'), 'utf8')
    const docs = upstream
      .split(/^---\s*$/m)
      .filter((d) => !/^kind: Deployment$/m.test(d))
      .join('\n---\n')
      .replaceAll('/opt/local-path-provisioner', join(this.paths.state, 'local-path'))
      .replaceAll('image: busybox', `image: ${HELPER_IMAGE}`)
    await this.k(['apply', '-f', '-'], { input: docs })
    state.pids.localPath = this.daemon('local-path-provisioner', [
      join(this.bin, 'local-path-provisioner'),
      'start',
      `--kubeconfig=${this.kubeconfig}`,
      '--namespace=local-path-storage',
      `--helper-image=${HELPER_IMAGE}`,
      '--service-account-name=local-path-provisioner-service-account',
      '--configmap-name=local-path-config',
    ])
  }

  // ---------------------------------------------------------------------------------------------
  // down

  /**
   * Tears down the cluster recorded in RUN_DIR (if any), then everything this harness could have
   * left behind: processes, containers, mounts, the namespace, cgroups, and the state folder (its
   * daemons' logs stay with keepLogs, for a look after `make k8s-down`). Safe to call repeatedly.
   */
  static async down(opts: { keepLogs?: boolean } = {}): Promise<void> {
    const state: State | undefined = existsSync(STATE_FILE)
      ? (JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State)
      : undefined
    const t0 = Date.now()
    // A slow teardown says where its time went (a loaded machine makes every step slower).
    let mark = t0
    const phase = (what: string) => {
      if (Date.now() - mark > 5_000) log(`teardown: ${what} took ${seconds(Date.now() - mark)}`)
      mark = Date.now()
    }
    const pids = state?.pids ?? {}
    const stop = async (names: string[]) => {
      const list = names.map((n) => pids[n]).filter((p): p is number => p !== undefined && alive(p))
      for (const p of list) process.kill(p, 'SIGTERM')
      const deadline = Date.now() + 10_000
      while (list.some(alive) && Date.now() < deadline) await sleep(100)
      const stuck = names.filter(
        (n) => pids[n] !== undefined && list.includes(pids[n] as number) && alive(pids[n] as number),
      )
      if (stuck.length > 0) log(`teardown: ${stuck.join(', ')} ignored SIGTERM for 10 s: SIGKILL`)
      for (const p of list.filter(alive)) process.kill(p, 'SIGKILL')
      while (list.some(alive)) await sleep(50)
    }
    // The kubelet first, so nothing restarts the containers being stopped.
    await stop(['kubelet'])
    phase('stopping the kubelet')
    const containers: string[] = []
    if (existsSync(SOCK)) {
      const ctr = (args: string[]) =>
        run('ctr', ['--address', SOCK, '-n', 'k8s.io', ...args], { timeoutMs: 30_000 })
      const tasks = (await ctr(['tasks', 'ls', '-q'])).stdout.split('\n').filter(Boolean)
      await Promise.all(tasks.map((t) => ctr(['tasks', 'kill', '-s', 'SIGKILL', t])))
      await Promise.all(tasks.map((t) => ctr(['tasks', 'delete', '-f', t])))
      containers.push(...(await ctr(['containers', 'ls', '-q'])).stdout.split('\n').filter(Boolean))
      await Promise.all(containers.map((c) => ctr(['containers', 'delete', c])))
    }
    phase(`removing ${containers.length} containers`)
    // Clients of the API server first, then it while etcd still answers (without etcd its
    // shutdown waits out the whole grace), then the rest.
    await stop(['localPath', 'kubeProxy', 'controllerManager', 'scheduler'])
    await stop(['apiserver'])
    await stop(['etcd', 'containerd'])
    phase('stopping the daemons')
    // Shims whose containerd is gone, and anything still in this cluster's cgroups.
    for (const pid of shimPids()) process.kill(pid, 'SIGKILL')
    for (const pid of cgroupPids()) process.kill(pid, 'SIGKILL')
    const stateDir = state?.stateDir
    const prefixes = [RUN_DIR, ...(stateDir ? [stateDir] : [])]
    for (const m of mountsUnder(prefixes)) await run('umount', ['-l', m])
    if (existsSync(`/run/netns/${NETNS}`)) await must('ip', ['netns', 'delete', NETNS])
    removeCgroups()
    phase('unmounting, removing the namespace and cgroups')
    if (stateDir) removeLogLinks(join(stateDir, 'pod-logs'))
    // libcni caches each attachment under the network name, or the sandbox id for the loopback.
    for (const f of listDir('/var/lib/cni/results')) {
      if (f.startsWith(`${NETNS}-`) || containers.some((id) => f.includes(id))) {
        rmSync(join('/var/lib/cni/results', f), { force: true })
      }
    }
    rmSync(RUN_DIR, { recursive: true, force: true })
    // Images, volumes and etcd go (over a GiB); nothing is left mounted under the folder by now.
    if (stateDir && mountsUnder([stateDir]).length === 0) {
      for (const e of listDir(stateDir))
        if (!(opts.keepLogs && e === 'logs')) rmSync(join(stateDir, e), { recursive: true, force: true })
      if (!opts.keepLogs) rmSync(stateDir, { recursive: true, force: true })
    }
    phase('removing the state folder')
    if (state) log(`cluster down in ${seconds(Date.now() - t0)}`)
  }

  /**
   * Before up(): a cluster whose owning test is still running is waited for (a run without the
   * lock, such as an older copy of this harness, may own it); anything else left behind (a crashed
   * run, `make k8s-up`) is torn down.
   */
  static async reclaim(waitMs = 45 * 60_000): Promise<void> {
    const deadline = Date.now() + waitMs
    let told = false
    for (;;) {
      const state = existsSync(STATE_FILE)
        ? (JSON.parse(readFileSync(STATE_FILE, 'utf8')) as State)
        : undefined
      if (!state) break
      if (state.owner === null || state.owner === process.pid || !alive(state.owner)) {
        log(
          `tearing down the cluster left by ${state.owner === null ? 'make k8s-up' : `an earlier run (pid ${state.owner})`}`,
        )
        break
      }
      if (Date.now() > deadline)
        throw new Error(`the test of pid ${state.owner} still uses the cluster in ${state.stateDir}`)
      if (!told)
        log(`waiting for the test of pid ${state.owner}, which uses the cluster in ${state.stateDir}`)
      told = true
      await sleep(5000)
    }
    await Cluster.down()
  }

  /**
   * One cluster per machine (its namespace, cgroup and /run paths are fixed): whoever starts,
   * tests or stops it holds LOCK_FILE (created exclusively, holding the pid) meanwhile. A holder
   * that is gone no longer counts; a live one is waited for, up to waitMs.
   */
  static async lock(waitMs = 45 * 60_000): Promise<void> {
    const deadline = Date.now() + waitMs
    let told = false
    for (;;) {
      try {
        writeFileSync(LOCK_FILE, String(process.pid), { flag: 'wx' })
        return
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const holder = Number(readFileSync(LOCK_FILE, { encoding: 'utf8', flag: 'a+' }).trim())
      if (!Number.isInteger(holder) || holder <= 0 || !alive(holder)) {
        rmSync(LOCK_FILE, { force: true })
        continue
      }
      if (Date.now() > deadline) throw new Error(`another Kubernetes test (pid ${holder}) holds ${LOCK_FILE}`)
      if (!told) log(`waiting for the Kubernetes test of pid ${holder} to finish (${LOCK_FILE})`)
      told = true
      await sleep(5000)
    }
  }

  static unlock(): void {
    try {
      if (readFileSync(LOCK_FILE, 'utf8').trim() === String(process.pid)) unlinkSync(LOCK_FILE)
    } catch {}
  }
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir)
  } catch {
    return []
  }
}

function cgroupHierarchies(): string[] {
  return listDir('/sys/fs/cgroup')
    .map((d) => join('/sys/fs/cgroup', d))
    .filter((d) => existsSync(join(d, 'cgroup.procs')) && !lstatSync(d).isSymbolicLink())
}

/** Folders of this cluster's cgroup tree in every hierarchy, deepest first. */
function cgroupDirs(): string[] {
  const out: string[] = []
  const walk = (dir: string) => {
    for (const e of listDir(dir)) {
      const p = join(dir, e)
      try {
        if (statSync(p).isDirectory()) walk(p)
      } catch {}
    }
    out.push(dir)
  }
  for (const h of cgroupHierarchies()) {
    const root = join(h, CGROUP_ROOT)
    if (existsSync(root)) walk(root)
  }
  return out
}

function cgroupPids(): number[] {
  const pids = new Set<number>()
  for (const dir of cgroupDirs()) {
    try {
      for (const l of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n')) if (l) pids.add(Number(l))
    } catch {}
  }
  pids.delete(process.pid)
  return [...pids]
}

function removeCgroups(): void {
  for (let attempt = 0; attempt < 3; attempt++) {
    for (const dir of cgroupDirs()) {
      try {
        rmdirSync(dir)
      } catch {}
    }
  }
}

/** containerd-shim processes started for this cluster's containerd (found by its socket). */
function shimPids(): number[] {
  const pids: number[] = []
  for (const e of listDir('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      const argv = readFileSync(`/proc/${e}/cmdline`, 'utf8').split('\0')
      if (argv[0]?.includes('containerd-shim') && argv.includes(SOCK)) pids.push(Number(e))
    } catch {}
  }
  return pids
}

/** Mount points under any of the prefixes, deepest first. */
function mountsUnder(prefixes: string[]): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined)
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => prefixes.some((pre) => p === pre || p.startsWith(`${pre}/`)))
  return [...new Set(points)].sort((a, b) => b.length - a.length)
}

/** The kubelet links each container's log into /var/log/containers: remove the links into ours. */
function removeLogLinks(podLogs: string): void {
  for (const f of listDir('/var/log/containers')) {
    const p = join('/var/log/containers', f)
    try {
      if (readlinkSync(p).startsWith(podLogs)) unlinkSync(p)
    } catch {}
  }
}
