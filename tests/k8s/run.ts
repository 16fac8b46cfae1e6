/**
 * The chart on a real Kubernetes (issue "Kubernetes for real"): starts the single-node cluster of
 * cluster.ts, loads the Mycel image into it, installs charts/mycel with `helm install --wait` and
 * only the values an operator sets for this cluster (deploy/values-single-node.yaml plus the image
 * tag), runs the chart's own `helm test`, then the scenarios below, each checking every
 * acknowledged file by SHA-256 from a client pod inside the cluster:
 *
 *   1. delete a storage pod, then force-delete another: reads continue, the StatefulSet brings each
 *      back on its own volume (same claim, same node id), the cluster returns to full redundancy;
 *   2. `helm upgrade` that changes the pod templates (rolling restart): the longest read failure
 *      window stays within the failover budget, no more node pods are down at once than the
 *      PodDisruptionBudget allows, and the eviction API refuses a second node eviction;
 *   3. scale the nodes 3 -> 4 with `helm upgrade`: the new node joins (and rebalancing finishes,
 *      asserted once /mycel/v1/status reports `misplaced`/`underReplicated`);
 *   4. `helm uninstall` keeps the PersistentVolumeClaims, and a reinstall finds every file.
 *
 * Prints a report (times to Ready, to recover, to rebalance; read failure windows), keeps pod logs
 * and `kubectl describe` output under .test-tmp/k8s-artifacts/<scenario>/ when a scenario fails,
 * and tears the cluster down in every case (also on SIGINT/SIGTERM).
 *
 *   node tests/dist/k8s/run.js [--results FILE] [--keep]
 *   env: IMAGE (the image `make images` built), HELM, K8S_TOOLS (make k8s-tools' folder);
 *        K8S_HELM_ARGS: extra helm install/upgrade arguments, for debugging;
 *        K8S_ARTIFACTS=always: keep the artifacts of every scenario, not only of failed ones
 * With --results, appends "k8s passed N failed N" to FILE (counted by tests/run.mjs).
 */
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Cluster, HELPER_IMAGE } from './cluster.js'
import { log, type RunResult, seconds, waitFor } from './exec.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../../..')
const NAMESPACE = 'mycel'
const RELEASE = 'mycel'
const CLIENT = 'mycel-k8s-client'
const ARTIFACTS = join(ROOT, '.test-tmp/k8s-artifacts')
/**
 * The longest a read may keep failing during a rolling restart: a stopping gateway or node is
 * replaced by the next replica within one RPC deadline (MYCEL_RPC_TIMEOUT_MS, 10 s) at worst.
 * deploy/RUNBOOK.md documents it with the measured value.
 */
const FAILOVER_BUDGET_MS = 10_000

const env = (name: string) => {
  const v = process.env[name]
  if (!v) throw new Error(`${name} is not set (run through make k8s-test)`)
  return v
}

interface FileRef {
  cid: string
  size: number
  sha256: string
}
/** A node in /mycel/v1/status: its gossip state, and whether it answered the gateway's latest probe. */
interface NodeStatus {
  id: string
  address: string
  state: string
  reachable: boolean
  /** Why the gateway's latest probe of it failed. */
  error?: string
  blocks?: number
  repair?: { lastPassStartedAt: string | null; lastPassCompletedAt: string | null; passRunning: boolean }
}
const healthyNode = (n: NodeStatus) => n.state === 'alive' && n.reachable
/** One line on what the status says of each node, for failure messages. */
const describeStatus = (st: Status) =>
  `ready=${st.ready}; ${st.nodes
    .map(
      (n) => `${n.address.split('.')[0]} ${n.state}${n.reachable ? '' : ` unreachable (${n.error ?? '?'})`}`,
    )
    .join(', ')}`
/** The status entry of a StatefulSet pod: its advertised address is the pod's DNS name. */
const entryOf = (st: Status, pod: string) => st.nodes.find((n) => n.address.startsWith(`${pod}.`))
interface Status {
  nodes: NodeStatus[]
  ready: boolean
  underReplicated: number
  misplaced: number
  unavailable: number
  repair: { queued: number }
  [key: string]: unknown
}
interface WatchResult {
  reads: number
  failures: number
  slowestMs: number
  windows: { start: string; ms: number; error: string }[]
  seconds: number
}
interface Pod {
  metadata: { name: string; uid: string; deletionTimestamp?: string }
  status: { conditions?: { type: string; status: string }[]; podIP?: string }
}
interface Pvc {
  metadata: { name: string; uid: string }
  spec: { volumeName?: string }
  status: { phase: string }
}

class Run {
  passed = 0
  failed = 0
  readonly report: [string, string][] = []
  readonly files: FileRef[] = []
  readonly cluster: Cluster
  readonly image: string
  private values: string[]

  constructor() {
    this.image = env('IMAGE')
    const i = this.image.lastIndexOf(':')
    this.values = [
      '-f',
      join(ROOT, 'deploy/values-single-node.yaml'),
      '--set',
      `image.repository=${this.image.slice(0, i)}`,
      '--set',
      `image.tag=${this.image.slice(i + 1)}`,
      // For debugging only (say, gRPC traces in the gateways): extra helm values, space-separated.
      ...(process.env.K8S_HELM_ARGS ?? '').split(' ').filter(Boolean),
    ]
    this.cluster = new Cluster({
      tools: env('K8S_TOOLS'),
      helm: env('HELM'),
      state: join(ROOT, '.test-tmp/k8s'),
    })
  }

  check(name: string, ok: boolean, detail = ''): boolean {
    if (ok) this.passed++
    else this.failed++
    process.stdout.write(`  ${ok ? 'ok  ' : 'FAIL'}  ${name}${!ok && detail ? `: ${detail}` : ''}\n`)
    return ok
  }

  metric(name: string, value: string): void {
    this.report.push([name, value])
    log(`${name}: ${value}`)
  }

  /** Runs one scenario; an exception is one failed check. On failure, the cluster's state is kept as artifacts. */
  async scenario(name: string, fn: () => Promise<void>): Promise<boolean> {
    log(`scenario: ${name}`)
    const before = this.failed
    try {
      await fn()
    } catch (err) {
      this.check(`${name}: ran to the end`, false, (err as Error).message)
    }
    const failed = this.failed > before
    if (failed || process.env.K8S_ARTIFACTS === 'always') {
      await this.artifacts(name).catch((err: Error) => log(`could not save artifacts: ${err.message}`))
    }
    return !failed
  }

  // -------------------------------------------------------------------------------------------
  // cluster access

  kubectl = (args: string[], input?: string, timeoutMs = 120_000) =>
    this.cluster.k(['-n', NAMESPACE, ...args], input === undefined ? { timeoutMs } : { input, timeoutMs })

  async helm(args: string[], timeoutMs = 900_000): Promise<RunResult> {
    const r = await this.cluster.helm(args, { timeoutMs })
    if (r.code !== 0)
      throw new Error(`helm ${args.slice(0, 2).join(' ')}: ${(r.stderr || r.stdout).trim().slice(-2000)}`)
    return r
  }

  async client<T>(args: string[], input?: string, timeoutMs = 300_000): Promise<T> {
    const out = await this.kubectl(
      ['exec', '-i', CLIENT, '--', 'node', '/scripts/client.mjs', ...args],
      input,
      timeoutMs,
    )
    try {
      return JSON.parse(out) as T
    } catch {
      throw new Error(`client ${args[0]}: no JSON answer (${JSON.stringify(out.slice(0, 200))})`)
    }
  }

  /** Runs a line of JavaScript with Node in the client pod; returns its output. */
  nodeEval = (script: string) => this.kubectl(['exec', CLIENT, '--', 'node', '-e', script])

  status = async (): Promise<Status> => {
    const r = await this.client<{ httpStatus: number; body: Status }>(['status'], undefined, 60_000)
    if (r.httpStatus !== 200) throw new Error(`status answered ${r.httpStatus}`)
    return r.body
  }

  /** Waits until the gateway reports `expected` healthy nodes and is ready; returns the status. */
  async healthy(expected: number, timeoutMs = 300_000): Promise<Status> {
    return waitFor(
      `${expected} healthy nodes in /mycel/v1/status`,
      async () => {
        const st = await this.status()
        const up = st.nodes.filter(healthyNode).length
        if (st.ready && up === expected && st.nodes.length === expected) return st
        throw new Error(describeStatus(st)) // the last one is in the timeout's message
      },
      timeoutMs,
      1000,
    )
  }

  /**
   * Full redundancy again after a fault at `since`: every node healthy, each with a complete repair
   * pass that started after the fault (so it saw the membership since), nothing under-replicated,
   * misplaced, unavailable or queued (tests/helpers/repair.ts' repairQuiet, through the Service).
   */
  async redundant(expected: number, since: number, timeoutMs = 600_000): Promise<Status> {
    await this.healthy(expected)
    const after = new Date(since).toISOString()
    return waitFor(
      `repair quiet on ${expected} nodes (passes since ${after}, nothing under-replicated or misplaced)`,
      async () => {
        const s = await this.status()
        const live = s.nodes.filter(healthyNode)
        const passed = live.every(
          (n) =>
            n.repair !== undefined &&
            n.repair.lastPassStartedAt !== null &&
            n.repair.lastPassStartedAt > after &&
            n.repair.lastPassCompletedAt !== null &&
            !n.repair.passRunning,
        )
        if (
          live.length === expected &&
          s.nodes.length === expected &&
          passed &&
          s.underReplicated === 0 &&
          s.misplaced === 0 &&
          s.unavailable === 0 &&
          s.repair.queued === 0
        )
          return s
        throw new Error(
          `${describeStatus(s)}; passes since: ${passed}; underReplicated ${s.underReplicated}, misplaced ${s.misplaced}, unavailable ${s.unavailable}, queued ${s.repair.queued}`,
        )
      },
      timeoutMs,
      2000,
    )
  }

  /** Reports the reads taken during a disruption and checks them against the failover budget. */
  judgeReads(label: string, w: WatchResult): void {
    const longest = Math.max(0, ...w.windows.map((x) => x.ms))
    this.metric(
      `${label}: reads meanwhile`,
      `${w.reads} in ${w.seconds.toFixed(0)} s, ${w.failures} failed (longest failure window ${seconds(longest)}), slowest good read ${seconds(w.slowestMs)}`,
    )
    for (const x of w.windows)
      log(`  reads failed from ${x.start} for ${seconds(x.ms)}: ${x.error.slice(0, 300)}`)
    this.check(
      `${label}: no read failed for longer than the failover budget (${seconds(FAILOVER_BUDGET_MS)})`,
      longest <= FAILOVER_BUDGET_MS,
      `longest failure window ${seconds(longest)}`,
    )
  }

  async verifyAll(when: string): Promise<void> {
    const r = await this.client<{ ok: number; bad: { cid: string; error: string }[] }>(
      ['verify'],
      JSON.stringify(this.files),
    )
    this.check(
      `${when}: all ${this.files.length} acknowledged files read back with the right SHA-256`,
      r.bad.length === 0,
      r.bad
        .slice(0, 5)
        .map((b) => `${b.cid}: ${b.error}`)
        .join('; '),
    )
  }

  async upload(sizes: number[]): Promise<void> {
    this.files.push(...(await this.client<FileRef[]>(['upload', ...sizes.map(String)])))
  }

  /** Reads every file in a loop from the client pod until stop() is called. */
  watch(): { stop: () => Promise<WatchResult> } {
    const stopFile = `/tmp/stop-${Date.now()}`
    // Settled at once, so a failing watch is reported by stop() and never left unhandled.
    const running = this.client<WatchResult>(['watch', stopFile], JSON.stringify(this.files), 3_600_000).then(
      (result) => ({ result }),
      (error: Error) => ({ error }),
    )
    return {
      stop: async () => {
        await this.nodeEval(`require('fs').writeFileSync('${stopFile}', '')`)
        const r = await running
        if ('error' in r) throw r.error
        return r.result
      },
    }
  }

  /**
   * Runs fn while the client pod reads every file in a loop; the loop is stopped however fn ends
   * (a watch left running would keep its kubectl exec, and this process, alive).
   */
  async whileReading<T>(fn: () => Promise<T>): Promise<[T, WatchResult]> {
    const reads = this.watch()
    let result: T
    try {
      result = await fn()
    } catch (err) {
      await reads.stop().catch(() => undefined)
      throw err
    }
    return [result, await reads.stop()]
  }

  /** Objects of one kind in the release's namespace (optionally by label selector). */
  async list<T>(kind: string, selector?: string): Promise<T[]> {
    const args = ['-n', NAMESPACE, 'get', kind, ...(selector ? ['-l', selector] : [])]
    return (await this.cluster.kjson<{ items: T[] }>(args)).items
  }

  nodePods = () => this.list<Pod>('pods', 'app.kubernetes.io/component=node')

  nodePdb = () =>
    this.cluster.kjson<{ spec: { maxUnavailable: number }; status: { disruptionsAllowed: number } }>([
      '-n',
      NAMESPACE,
      'get',
      'pdb',
      `${RELEASE}-node`,
    ])

  podReady = (p: Pod | undefined) =>
    p !== undefined &&
    p.metadata.deletionTimestamp === undefined &&
    (p.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')

  async pvcs(): Promise<Map<string, Pvc>> {
    return new Map((await this.list<Pvc>('pvc')).map((p) => [p.metadata.name, p]))
  }

  async install(nodes: number): Promise<number> {
    const t0 = Date.now()
    await this.helm([
      'install',
      RELEASE,
      join(ROOT, 'charts/mycel'),
      '-n',
      NAMESPACE,
      ...this.values,
      '--set',
      `node.replicas=${nodes}`,
      '--wait',
      '--timeout',
      '10m',
    ])
    return Date.now() - t0
  }

  async upgrade(set: string[]): Promise<number> {
    const t0 = Date.now()
    await this.helm([
      'upgrade',
      RELEASE,
      join(ROOT, 'charts/mycel'),
      '-n',
      NAMESPACE,
      '--reuse-values',
      ...set.flatMap((s) => ['--set', s]),
      '--wait',
      '--timeout',
      '10m',
    ])
    return Date.now() - t0
  }

  /** Every node and gateway pod of the release Ready (the helm test pod aside). */
  async allReady(expectedPods: number): Promise<void> {
    const selector = `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component in (node,gateway)`
    const pods = (await this.list<Pod>('pods', selector)).filter(
      (p) => p.metadata.deletionTimestamp === undefined,
    )
    const notReady = pods.filter((p) => !this.podReady(p)).map((p) => p.metadata.name)
    this.check(
      `every pod of the release is Ready (${expectedPods})`,
      pods.length === expectedPods && notReady.length === 0,
      `${pods.length} pods, not ready: ${notReady.join(', ')}`,
    )
  }

  async helmTest(label: string): Promise<void> {
    const t0 = Date.now()
    const r = await this.cluster.helm(['test', RELEASE, '-n', NAMESPACE, '--logs', '--timeout', '5m'], {
      timeoutMs: 400_000,
    })
    const logs = r.stdout
      .split('\n')
      .filter((l) => /^(uploaded|downloaded|pinned|status|PASS|FAIL)/.test(l))
      .join(' | ')
    this.check(
      `${label}: helm test passes (${logs})`,
      r.code === 0,
      (r.stderr || r.stdout).trim().slice(-1500),
    )
    this.metric(`${label}: helm test`, seconds(Date.now() - t0))
  }

  // -------------------------------------------------------------------------------------------
  // scenarios

  async installScenario(): Promise<void> {
    // The restricted Pod Security Standard is enforced: the chart's pods must meet it.
    await this.cluster.k(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: {
          name: NAMESPACE,
          labels: {
            'pod-security.kubernetes.io/enforce': 'restricted',
            'pod-security.kubernetes.io/enforce-version': 'latest',
          },
        },
      }),
    })
    const ms = await this.install(3)
    this.metric('install: helm install --wait until every pod Ready', seconds(ms))
    await this.allReady(5)
    await this.helmTest('install')

    // The client pod: the compiled client script from a ConfigMap, run by the Mycel image's Node.
    const script = readFileSync(join(ROOT, 'tests/dist/k8s/client.js'), 'utf8')
    await this.kubectl(['apply', '-f', '-'], JSON.stringify(this.clientManifest(script)))
    await this.kubectl(
      ['wait', '--for=condition=Ready', `pod/${CLIENT}`, '--timeout=300s'],
      undefined,
      320_000,
    )

    // Seeds by DNS: the headless Service answers every node pod's address.
    const pods = await this.nodePods()
    const ips = pods.map((p) => p.status.podIP).sort()
    const resolved = (
      await this.nodeEval(
        `require('dns').promises.resolve4('${RELEASE}-node-headless.${NAMESPACE}.svc.cluster.local').then(a=>console.log(a.sort().join(',')))`,
      )
    ).trim()
    this.check(
      'the headless Service resolves to every node pod',
      resolved === ips.join(','),
      `${resolved} vs ${ips.join(',')}`,
    )

    await this.upload([0, 1, 1000, 262_144, 262_145, 3 * 1024 * 1024 + 17, 8 * 1024 * 1024 + 1])
    this.check('uploads through the gateway Service are acknowledged', this.files.length === 7)
    await this.verifyAll('after install')
  }

  /** Deletes a node pod (gracefully or forced) while reads run; returns once it serves again. */
  async podLoss(pod: string, force: boolean): Promise<void> {
    const label = force ? 'force-delete' : 'delete'
    const before = (await this.nodePods()).find((p) => p.metadata.name === pod)
    const claim = (await this.pvcs()).get(`data-${pod}`)
    const idBefore = entryOf(await this.status(), pod)?.id
    if (!before || !claim || !idBefore) throw new Error(`${pod}: pod, claim data-${pod} or node id not found`)
    const t0 = Date.now()
    const [{ extra, back, ready, status, recovered }, w] = await this.whileReading(async () => {
      await this.kubectl([
        'delete',
        'pod',
        pod,
        '--wait=false',
        ...(force ? ['--grace-period=0', '--force'] : []),
      ])
      // Writes need W=2 of R=3: they keep working with one node away.
      const extra = await this.client<FileRef[]>(['upload', '2000000'])
      this.files.push(...extra)
      const back = await waitFor(
        `${pod} recreated and Ready`,
        async () => {
          const p = (await this.nodePods()).find((x) => x.metadata.name === pod)
          return p && p.metadata.uid !== before.metadata.uid && this.podReady(p) ? p : undefined
        },
        300_000,
      )
      const ready = Date.now() - t0
      const status = await this.redundant(3, t0)
      return { extra, back, ready, status, recovered: Date.now() - t0 }
    })
    this.metric(`${label} ${pod}: pod Ready again`, seconds(ready))
    this.metric(`${label} ${pod}: full redundancy again (repair quiet)`, seconds(recovered))
    this.judgeReads(`${label} ${pod}`, w)
    this.check(`${label} ${pod}: an upload with the node away is acknowledged`, extra.length === 1)
    this.check(
      `${label} ${pod}: the StatefulSet recreated it (new pod uid)`,
      back.metadata.uid !== before.metadata.uid,
    )
    const claimAfter = (await this.pvcs()).get(`data-${pod}`)
    this.check(
      `${label} ${pod}: it came back on its own volume (same claim and volume)`,
      claimAfter?.metadata.uid === claim.metadata.uid &&
        claimAfter?.spec.volumeName === claim.spec.volumeName,
    )
    const idAfter = entryOf(status, pod)?.id
    this.check(
      `${label} ${pod}: same node id after restart (its data was kept)`,
      idAfter === idBefore,
      `${idBefore} -> ${idAfter}`,
    )
    await this.verifyAll(`after ${label} ${pod}`)
  }

  async rollingScenario(): Promise<void> {
    const pdb = await this.nodePdb()
    const allowed = pdb.spec.maxUnavailable
    const replicas = 3
    // Watch the node pods: how many are not Ready (or missing) at once, at any time in the rollout.
    let maxDown = 0
    let monitoring = true
    const monitor = (async () => {
      while (monitoring) {
        try {
          const pods = await this.nodePods()
          const ready = pods.filter((p) => this.podReady(p)).length
          maxDown = Math.max(maxDown, replicas - ready)
        } catch {}
        await new Promise((r) => setTimeout(r, 500))
      }
    })()
    const stamp = `restartedAt=${new Date().toISOString().replace(/[:.]/g, '')}`
    let ms: number
    let w: WatchResult
    try {
      ;[ms, w] = await this.whileReading(async () => {
        const ms = await this.upgrade([
          `node.podAnnotations.mycel-k8s/${stamp}`,
          `gateway.podAnnotations.mycel-k8s/${stamp}`,
        ])
        await this.kubectl(['rollout', 'status', `statefulset/${RELEASE}-node`, '--timeout=600s'])
        await this.kubectl(['rollout', 'status', `deployment/${RELEASE}-gateway`, '--timeout=600s'])
        await this.healthy(replicas)
        return ms
      })
    } finally {
      monitoring = false
      await monitor
    }
    this.metric('rolling restart: helm upgrade --wait (3 nodes, 2 gateways)', seconds(ms))
    this.judgeReads('rolling restart', w)
    this.metric(
      'rolling restart: most node pods not Ready at once',
      `${maxDown} (PodDisruptionBudget maxUnavailable ${allowed})`,
    )
    this.check(
      `rolling restart: never more than maxUnavailable=${allowed} node pods down`,
      maxDown <= allowed,
      `${maxDown} down at once`,
    )
    await this.allReady(5)
    await this.verifyAll('after the rolling restart')

    // The budget holds against voluntary disruption: a second eviction is refused while one node is away.
    const evict = (pod: string) =>
      this.cluster.kubectl(
        ['create', '--raw', `/api/v1/namespaces/${NAMESPACE}/pods/${pod}/eviction`, '-f', '-'],
        {
          input: JSON.stringify({
            apiVersion: 'policy/v1',
            kind: 'Eviction',
            metadata: { name: pod, namespace: NAMESPACE },
          }),
        },
      )
    await waitFor(
      'the node PodDisruptionBudget to allow a disruption',
      async () => {
        const p = await this.nodePdb()
        return p.status.disruptionsAllowed >= 1
      },
      120_000,
    )
    const evicted = Date.now()
    const first = await evict(`${RELEASE}-node-0`)
    const second = await evict(`${RELEASE}-node-1`)
    this.check('eviction of one node pod is allowed', first.code === 0, first.stderr.trim())
    this.check(
      'a second node eviction is refused by the PodDisruptionBudget',
      second.code !== 0 && /disruption budget/i.test(second.stderr),
      second.code === 0 ? 'it was evicted' : second.stderr.trim(),
    )
    await waitFor(
      'node pods Ready after the eviction',
      async () => (await this.nodePods()).filter((p) => this.podReady(p)).length === replicas,
      300_000,
    )
    await this.redundant(replicas, evicted)
    this.metric('eviction of a node pod: repair quiet again', seconds(Date.now() - evicted))
    await this.verifyAll('after the eviction')
  }

  async scaleScenario(): Promise<void> {
    const t0 = Date.now()
    const ms = await this.upgrade(['node.replicas=4'])
    this.metric('scale 3 -> 4: helm upgrade --wait', seconds(ms))
    await this.healthy(4)
    this.metric('scale 3 -> 4: the gateway sees 4 healthy nodes', seconds(Date.now() - t0))
    this.check('scale 3 -> 4: the new node joined (4 healthy nodes)', true)
    await this.allReady(6)
    const st = await this.redundant(4, t0)
    this.metric('scale 3 -> 4: rebalanced (repair quiet: nothing misplaced)', seconds(Date.now() - t0))
    const added = entryOf(st, `${RELEASE}-node-3`)
    this.check(
      'scale 3 -> 4: rebalancing moved blocks to the new node and finished',
      (added?.blocks ?? 0) > 0,
      `${RELEASE}-node-3 holds ${added?.blocks} blocks`,
    )
    await this.upload([500_000, 4 * 1024 * 1024])
    await this.verifyAll('after scaling to 4 nodes')
    await this.helmTest('scale 3 -> 4')
  }

  async reinstallScenario(): Promise<void> {
    const claims = await this.pvcs()
    const ids = new Map((await this.status()).nodes.map((n) => [n.address, n.id]))
    const secret = () =>
      this.cluster
        .kjson<{ metadata: { uid: string } }>(['-n', NAMESPACE, 'get', 'secret', `${RELEASE}-tokens`])
        .then((s) => s.metadata.uid)
    const secretBefore = await secret()
    const t0 = Date.now()
    await this.helm(['uninstall', RELEASE, '-n', NAMESPACE, '--wait', '--timeout', '5m'])
    this.metric('helm uninstall --wait', seconds(Date.now() - t0))
    await waitFor('the release pods to be gone', async () => (await this.nodePods()).length === 0, 180_000)
    const after = await this.pvcs()
    const kept = [...claims.values()].filter(
      (c) => after.get(c.metadata.name)?.metadata.uid === c.metadata.uid,
    )
    this.check(
      `helm uninstall keeps the PersistentVolumeClaims (${[...claims.keys()].join(', ')})`,
      claims.size === 4 && kept.length === claims.size,
      `${kept.length} of ${claims.size} kept`,
    )
    const secretAfter = await secret().catch(() => undefined)
    this.check(
      'helm uninstall keeps the tokens Secret (the tokens clients hold)',
      secretAfter === secretBefore,
      `${secretBefore} -> ${secretAfter}`,
    )
    const ms = await this.install(4)
    this.metric('reinstall: helm install --wait until every pod Ready', seconds(ms))
    await this.allReady(6)
    const st = await this.healthy(4)
    const same = st.nodes.filter((n) => ids.get(n.address) === n.id).length
    this.check('reinstall: every node found its volume (same node ids)', same === 4, `${same} of 4`)
    await this.verifyAll('after uninstall and reinstall')
    await this.upload([300_000])
    await this.verifyAll('after an upload with the kept token')
  }

  clientManifest(script: string): unknown {
    const restricted = {
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    }
    return {
      apiVersion: 'v1',
      kind: 'List',
      items: [
        {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: CLIENT, namespace: NAMESPACE },
          data: { 'client.mjs': script },
        },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: CLIENT, namespace: NAMESPACE, labels: { app: CLIENT } },
          spec: {
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            terminationGracePeriodSeconds: 1,
            containers: [
              {
                name: 'client',
                image: this.image,
                imagePullPolicy: 'Never',
                command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
                env: [
                  {
                    name: 'GATEWAY_URL',
                    value: `http://${RELEASE}-gateway.${NAMESPACE}.svc.cluster.local:8080`,
                  },
                  // The chart's generated admin token, as an application in the cluster would take it.
                  {
                    name: 'MYCEL_TOKEN',
                    valueFrom: { secretKeyRef: { name: `${RELEASE}-tokens`, key: 'admin-token' } },
                  },
                ],
                resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '512Mi' } },
                securityContext: restricted,
                volumeMounts: [
                  { name: 'scripts', mountPath: '/scripts' },
                  { name: 'tmp', mountPath: '/tmp' },
                ],
              },
            ],
            volumes: [
              { name: 'scripts', configMap: { name: CLIENT } },
              { name: 'tmp', emptyDir: {} },
            ],
          },
        },
      ],
    }
  }

  /** Saves what explains a failure: objects, events, describe output, every container's logs, the cluster's own logs. */
  async artifacts(scenario: string): Promise<void> {
    const dir = join(ARTIFACTS, scenario.replace(/[^a-z0-9-]+/gi, '-'))
    mkdirSync(dir, { recursive: true })
    const save = async (file: string, args: string[]) => {
      const r = await this.cluster.kubectl(args, { timeoutMs: 60_000 })
      writeFileSync(join(dir, file), r.stdout + r.stderr)
    }
    await save('objects.txt', ['get', 'all,pvc,pv,pdb,cm,endpointslices', '-A', '-o', 'wide'])
    await save('events.txt', ['get', 'events', '-A', '--sort-by=.lastTimestamp'])
    await save('describe-pods.txt', ['describe', 'pods', '-A'])
    await save('describe-node.txt', ['describe', 'nodes'])
    // What each gateway says of the cluster, asked directly (not through the Service).
    const gateways = await this.list<Pod>('pods', 'app.kubernetes.io/component=gateway').catch(() => [])
    for (const g of gateways) {
      if (!g.status.podIP) continue
      const url = `GATEWAY_URL=http://${g.status.podIP}:8080`
      const args = [
        '-n',
        NAMESPACE,
        'exec',
        CLIENT,
        '--',
        'env',
        url,
        'node',
        '/scripts/client.mjs',
        'status',
      ]
      const r = await this.cluster.kubectl(args, { timeoutMs: 60_000 })
      writeFileSync(join(dir, `status-${g.metadata.name}.json`), r.stdout + r.stderr)
    }
    // What cluster DNS answers for each node pod's name, beside the pod's address.
    const dns: string[] = []
    for (const p of await this.nodePods().catch(() => [])) {
      const name = `${p.metadata.name}.${RELEASE}-node-headless.${NAMESPACE}.svc.cluster.local`
      const script = `require('dns').promises.lookup('${name}',{all:true}).then(a=>console.log(a.map(x=>x.address).join(',')),e=>console.log(e.code))`
      const r = await this.cluster.kubectl(['-n', NAMESPACE, 'exec', CLIENT, '--', 'node', '-e', script], {
        timeoutMs: 30_000,
      })
      dns.push(`${name}: DNS ${r.stdout.trim() || r.stderr.trim()}, pod ${p.status.podIP}`)
    }
    writeFileSync(join(dir, 'dns.txt'), `${dns.join('\n')}\n`)
    const pods = await this.cluster.kjson<{ items: { metadata: { name: string; namespace: string } }[] }>([
      'get',
      'pods',
      '-A',
    ])
    for (const p of pods.items) {
      const base = `logs-${p.metadata.namespace}-${p.metadata.name}`
      await save(`${base}.txt`, [
        '-n',
        p.metadata.namespace,
        'logs',
        p.metadata.name,
        '--all-containers',
        '--timestamps',
      ])
      await save(`${base}-previous.txt`, [
        '-n',
        p.metadata.namespace,
        'logs',
        p.metadata.name,
        '--all-containers',
        '--previous',
      ])
    }
    const logs = join(this.cluster.paths.state, 'logs')
    for (const f of readdirSync(logs)) copyFileSync(join(logs, f), join(dir, `cluster-${f}`))
    log(`artifacts of "${scenario}" in ${dir}`)
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const resultsFile = args.includes('--results') ? args[args.indexOf('--results') + 1] : undefined
  const keep = args.includes('--keep')
  const t0 = Date.now()
  const r = new Run()
  rmSync(ARTIFACTS, { recursive: true, force: true })
  let locked = false
  let tearingDown = false
  // Only a run that holds the lock touches the cluster (another run may be using it).
  const teardown = async () => {
    if (tearingDown || !locked) return
    tearingDown = true
    if (!keep) await Cluster.down()
    Cluster.unlock()
  }
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: tearing the cluster down`)
      void teardown().finally(() => process.exit(130))
    })
  }
  try {
    await Cluster.lock()
    locked = true
    r.metric(
      'cluster up (every daemon, node Ready, CoreDNS, local-path)',
      seconds(await r.cluster.up(process.pid)),
    )
    const load = Date.now()
    await r.cluster.loadImage(r.image)
    await r.cluster.loadImage(HELPER_IMAGE)
    r.metric('images loaded into containerd', seconds(Date.now() - load))
    const scenarios: [string, () => Promise<void>][] = [
      ['install', () => r.installScenario()],
      [
        'pod loss',
        async () => {
          await r.podLoss(`${RELEASE}-node-1`, false)
          await r.podLoss(`${RELEASE}-node-2`, true)
        },
      ],
      ['rolling restart', () => r.rollingScenario()],
      ['scale out', () => r.scaleScenario()],
      ['uninstall and reinstall', () => r.reinstallScenario()],
    ]
    let broken: string | undefined
    for (const [name, fn] of scenarios) {
      if (broken) {
        r.check(`${name}: not run because "${broken}" failed`, false)
        continue
      }
      if (!(await r.scenario(name, fn)) && name === 'install') broken = name
    }
  } catch (err) {
    r.check('the test cluster starts', false, (err as Error).message)
    await r.artifacts('cluster').catch(() => undefined)
  } finally {
    await teardown()
  }
  process.stdout.write('\nKubernetes report\n')
  for (const [k, v] of r.report) process.stdout.write(`  ${k.padEnd(72)} ${v}\n`)
  process.stdout.write(`  ${'total wall time'.padEnd(72)} ${seconds(Date.now() - t0)}\n`)
  process.stdout.write(`k8s: ${r.passed} passed, ${r.failed} failed\n`)
  if (r.failed) process.stdout.write(`artifacts: ${ARTIFACTS}\n`)
  if (resultsFile) appendFileSync(resultsFile, `k8s passed ${r.passed} failed ${r.failed}\n`)
  // Exit now: a command a failed scenario left running (a kubectl exec into a pod of the torn-down
  // cluster) must not keep the process, and make test, waiting.
  process.exit(r.failed ? 1 : 0)
}

void main()
