import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import {
  ConfigInvalidError,
  GATEWAY_ENV_KEYS,
  loadGatewayEnv,
  loadNodeEnv,
  NODE_ENV_KEYS,
  splitHostPort,
} from '@mycel/core'
import { parse } from 'yaml'

/**
 * The deployment files name the same MYCEL_* variables the code reads: deploy/compose.yaml is
 * parsed and every service's environment loaded through the real config schema, and the chart's
 * container env names are compared with the schema's keys. A renamed or misspelt variable in any
 * of them fails here instead of being silently ignored by a running process.
 */
const root = process.cwd()
type Role = 'node' | 'gateway'
const KEYS: Record<Role, readonly string[]> = { node: NODE_ENV_KEYS, gateway: GATEWAY_ENV_KEYS }
const LOAD: Record<Role, (env: NodeJS.ProcessEnv) => unknown> = { node: loadNodeEnv, gateway: loadGatewayEnv }

/**
 * Variables a role cannot start without: what the schema reports missing from an environment that
 * holds only `base` (a compose gateway with MYCEL_AUTH=off needs no token file).
 */
function requiredKeys(role: Role, base: NodeJS.ProcessEnv = {}): string[] {
  try {
    LOAD[role](base)
    return []
  } catch (err) {
    assert.ok(err instanceof ConfigInvalidError)
    return err.issues.map((issue) => issue.slice(0, issue.indexOf(':')))
  }
}

interface ComposeService {
  image: string
  command: string[]
  environment: Record<string, string>
  volumes?: string[]
  ports?: string[]
  read_only?: boolean
  user?: string
  cap_drop?: string[]
  healthcheck?: { test: string[] }
}

const composeText = readFileSync(join(root, 'deploy/compose.yaml'), 'utf8')
const compose = parse(composeText, { merge: true }) as { services: Record<string, ComposeService> }
const services = Object.entries(compose.services)
const roleOf = (s: ComposeService): Role => {
  const role = s.command[0]
  assert.ok(role === 'node' || role === 'gateway', `unknown role ${role}`)
  return role
}
const mycelEnv = (env: Record<string, string>) => Object.keys(env).filter((k) => k.startsWith('MYCEL_'))

/** MYCEL_* env names of a text (the `- name: X` entries of env lists). */
const envNames = (text: string) =>
  [...text.matchAll(/^\s*- name: (MYCEL_[A-Z0-9_]+)\s*$/gm)].map((m) => m[1] as string)

const chartFile = (name: string) => readFileSync(join(root, 'charts/mycel/templates', name), 'utf8')

/** Env names of the chart's security wiring (`mycel.securityEnv` in _helpers.tpl): TLS files, token file. */
function securityEnvNames(): string[] {
  const block = chartFile('_helpers.tpl').match(/define "mycel\.securityEnv" -}}([\s\S]*?){{- end -}}/)
  assert.ok(block, '_helpers.tpl defines no mycel.securityEnv')
  return envNames(block[1] as string)
}

/** Env names of the first container in a chart template, with the security wiring it includes. */
function chartEnvNames(template: string): string[] {
  const text = chartFile(template)
  const security = text.includes('include "mycel.securityEnv"') ? securityEnvNames() : []
  return [...envNames(text), ...security]
}

describe('deploy/compose.yaml matches the code', () => {
  it('runs three storage nodes and a gateway from the image make images builds', () => {
    const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string })
      .version
    assert.deepEqual(services.map(([, s]) => roleOf(s)).sort(), ['gateway', 'node', 'node', 'node'])
    for (const [name, s] of services) {
      assert.match(
        composeText,
        new RegExp(`\\$\\{MYCEL_IMAGE:-localhost/mycel:${version.replaceAll('.', '\\.')}\\}`),
      )
      assert.ok(s.image.includes('MYCEL_IMAGE'), `${name}: image comes from MYCEL_IMAGE`)
    }
  })

  for (const [name, s] of services) {
    it(`${name}: every MYCEL_* variable is one the ${s.command[0]} reads, and the values load`, () => {
      const role = roleOf(s)
      const unknown = mycelEnv(s.environment).filter((k) => !KEYS[role].includes(k))
      assert.deepEqual(unknown, [], `${name} sets variables the ${role} does not read`)
      const auth = s.environment.MYCEL_AUTH === undefined ? {} : { MYCEL_AUTH: s.environment.MYCEL_AUTH }
      for (const k of requiredKeys(role, auth)) assert.ok(k in s.environment, `${name} must set ${k}`)
      assert.doesNotThrow(() => LOAD[role](s.environment))
    })

    it(`${name}: hardened as in the chart (uid 1000, read-only root, no capabilities)`, () => {
      assert.equal(s.user, '1000:1000')
      assert.equal(s.read_only, true)
      assert.deepEqual(s.cap_drop, ['ALL'])
    })
  }

  it('the gateway peers are the node services at their gRPC ports; health checks and ports match the listeners', () => {
    const nodes = new Map(services.filter(([, s]) => roleOf(s) === 'node'))
    const [[, gw]] = services.filter(([, s]) => roleOf(s) === 'gateway') as [[string, ComposeService]]
    const peers = (gw.environment.MYCEL_PEERS ?? '').split(',')
    assert.deepEqual(peers.map((p) => splitHostPort(p).host).sort(), [...nodes.keys()].sort())
    for (const peer of peers) {
      const { host, port } = splitHostPort(peer)
      const node = nodes.get(host) as ComposeService
      assert.equal(splitHostPort(node.environment.MYCEL_GRPC_LISTEN ?? '').port, port, `${peer}: gRPC port`)
      const admin = splitHostPort(node.environment.MYCEL_ADMIN_LISTEN ?? '').port
      assert.ok(
        node.healthcheck?.test.join(' ').includes(`127.0.0.1:${admin}/readyz`),
        `${host}: healthcheck port`,
      )
      const dataDir = node.environment.MYCEL_DATA_DIR
      assert.ok(
        node.volumes?.some((v) => v.endsWith(`:${dataDir}`)),
        `${host}: a volume at MYCEL_DATA_DIR ${dataDir}`,
      )
      if (node.environment.MYCEL_PEERS) {
        const nodePeers = node.environment.MYCEL_PEERS.split(',').map((p) => splitHostPort(p).host)
        assert.deepEqual(nodePeers.sort(), [...nodes.keys()].sort(), `${host}: seed list names every node`)
      }
    }
    const http = splitHostPort(gw.environment.MYCEL_GATEWAY_LISTEN ?? '').port
    assert.ok(gw.healthcheck?.test.join(' ').includes(`127.0.0.1:${http}/readyz`), 'gateway healthcheck port')
    assert.ok(
      gw.ports?.some((p) => p.endsWith(`:${http}`)),
      'the gateway HTTP port is published',
    )
  })
})

describe('the Helm chart sets only variables the code reads', () => {
  const templates: Record<Role, string> = {
    node: 'node-statefulset.yaml',
    gateway: 'gateway-deployment.yaml',
  }
  for (const role of ['node', 'gateway'] as const) {
    it(`${templates[role]}: MYCEL_* env names are ${role} settings, required ones included`, () => {
      const names = chartEnvNames(templates[role])
      assert.ok(names.length > 0, 'no MYCEL_* env found: has the template changed shape?')
      assert.deepEqual(
        names.filter((k) => !KEYS[role].includes(k)),
        [],
        `${templates[role]} sets variables the ${role} does not read`,
      )
      for (const k of requiredKeys(role)) assert.ok(names.includes(k), `${templates[role]} must set ${k}`)
    })
  }

  it('the security wiring reaches both roles', () => {
    for (const role of ['node', 'gateway'] as const) {
      assert.ok(
        chartFile(templates[role]).includes('include "mycel.securityEnv"'),
        `${templates[role]} must include mycel.securityEnv`,
      )
    }
  })

  // Compose is a local cluster without TLS or tokens (as `make run`, MYCEL_AUTH=off): the chart's
  // certificate and token files, and the gateway's token for the nodes' API, aside.
  it('compose sets every variable the chart sets for each role (one configuration, two packagings)', () => {
    for (const role of ['node', 'gateway'] as const) {
      const security = [...securityEnvNames(), 'MYCEL_API_TOKEN']
      const chart = chartEnvNames(templates[role]).filter((k) => !security.includes(k))
      for (const [name, s] of services.filter(([, s]) => roleOf(s) === role)) {
        const missing = chart.filter((k) => !(k in s.environment))
        assert.deepEqual(missing, [], `${name} lacks what the chart sets for a ${role}`)
      }
    }
  })
})
