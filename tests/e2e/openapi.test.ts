import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { GatewayModule } from '@mycel/gateway'
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js'
import { RequestMethod } from '@nestjs/common/enums/request-method.enum.js'
import { parse } from 'yaml'
import { startCluster, type TestCluster } from '../helpers/cluster.js'

const OPENAPI_FILE = 'services/gateway/openapi.yaml'
const METHODS = ['get', 'head', 'post', 'put', 'delete', 'options', 'patch'] as const

interface Operation {
  parameters?: Parameter[]
  requestBody?: unknown
  responses: Record<string, { content?: Record<string, unknown> } | { $ref: string }>
}
interface Parameter {
  name: string
  in: string
  required?: boolean
  example?: string
  $ref?: string
}
interface Document {
  paths: Record<string, Record<string, Operation | Parameter[]>>
  components: {
    parameters: Record<string, Parameter>
    responses: Record<string, { content?: Record<string, unknown> }>
    requestBodies: Record<string, { content: Record<string, unknown> }>
  }
}

const doc = parse(readFileSync(OPENAPI_FILE, 'utf8')) as Document
const deref = <T>(x: T | { $ref: string }, section: 'parameters' | 'responses' | 'requestBodies'): T =>
  typeof x === 'object' && x !== null && '$ref' in x
    ? (doc.components[section][(x.$ref as string).split('/').pop() as string] as T)
    : (x as T)

/** Nest's route table: every controller method's HTTP method and path (as an OpenAPI template). */
function nestRoutes(): Array<{ method: string; path: string }> {
  const controllers = GatewayModule.forRoot({} as never, {} as never).controllers ?? []
  const routes: Array<{ method: string; path: string }> = []
  const list = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : [String(v ?? '')])
  for (const controller of controllers) {
    const prefixes = list(Reflect.getMetadata(PATH_METADATA, controller))
    for (const name of Object.getOwnPropertyNames(controller.prototype)) {
      const handler = (controller.prototype as Record<string, unknown>)[name]
      if (typeof handler !== 'function' || name === 'constructor') continue
      const paths = Reflect.getMetadata(PATH_METADATA, handler)
      if (paths === undefined) continue
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number] ?? 'ALL'
      for (const prefix of prefixes) {
        for (const p of list(paths)) {
          const path = `/${[prefix, p].filter((s) => s !== '' && s !== '/').join('/')}`
            .replace(/:(\w+)/g, '{$1}')
            .replace(/\*(\w+)/g, '{$1}')
          routes.push({ method, path })
        }
      }
    }
  }
  return routes
}

function operations(): Array<{ path: string; method: string; op: Operation; params: Parameter[] }> {
  const out: Array<{ path: string; method: string; op: Operation; params: Parameter[] }> = []
  for (const [path, item] of Object.entries(doc.paths)) {
    const shared = ((item.parameters as Parameter[] | undefined) ?? []).map((p) => deref(p, 'parameters'))
    for (const method of METHODS) {
      const op = item[method] as Operation | undefined
      if (op === undefined) continue
      const params = [...shared, ...(op.parameters ?? []).map((p) => deref(p, 'parameters'))]
      out.push({ path, method, op, params })
    }
  }
  return out
}

describe('OpenAPI description (services/gateway/openapi.yaml)', () => {
  it('documents exactly the routes Nest serves', () => {
    const routes = nestRoutes()
    const documented = new Set(Object.keys(doc.paths))
    const served = new Set(routes.map((r) => r.path))
    assert.deepEqual(
      [...served].filter((p) => !documented.has(p)),
      [],
      'served but not documented',
    )
    assert.deepEqual(
      [...documented].filter((p) => !served.has(p)),
      [],
      'documented but not served',
    )
    for (const r of routes) {
      const item = doc.paths[r.path] ?? {}
      const methods = METHODS.filter((m) => item[m] !== undefined)
      if (r.method === 'ALL') assert.ok(methods.length > 0, `${r.path}: no method documented`)
      else
        assert.ok(methods.includes(r.method.toLowerCase() as never), `${r.method} ${r.path} not documented`)
    }
  })

  describe('on a running gateway', () => {
    let cluster: TestCluster
    before(async () => {
      cluster = await startCluster({ nodes: 1 })
      // The examples' CID: the empty file.
      const up = await fetch(`${cluster.gatewayUrl}/mycel/v1/upload`, {
        method: 'POST',
        body: new Uint8Array(),
      })
      assert.equal(up.status, 201)
    })
    after(async () => {
      await cluster?.destroy()
    })

    it('serves the description it checks in, as YAML and JSON', async () => {
      const yaml = await fetch(`${cluster.gatewayUrl}/mycel/v1/openapi.yaml`)
      assert.equal(yaml.status, 200)
      assert.match(yaml.headers.get('content-type') ?? '', /^application\/yaml/)
      assert.equal(await yaml.text(), readFileSync(OPENAPI_FILE, 'utf8'))
      const json = await fetch(`${cluster.gatewayUrl}/mycel/v1/openapi.json`)
      assert.deepEqual(await json.json(), doc)
    })

    it('every documented operation answers with a documented status and content type', async () => {
      for (const { path, method, op, params } of operations()) {
        const url = new URL(
          path.replace(/\{(\w+)\}/g, (_, name: string) => {
            const p = params.find((x) => x.in === 'path' && x.name === name)
            return encodeURIComponent(p?.example ?? 'x')
          }),
          cluster.gatewayUrl,
        )
        for (const p of params) {
          if (p.in === 'query' && p.required) url.searchParams.set(p.name, p.example ?? 'x')
        }
        let body: Uint8Array | FormData | undefined
        if (op.requestBody !== undefined) {
          const content = deref(
            op.requestBody as { content: Record<string, unknown> },
            'requestBodies',
          ).content
          if ('multipart/form-data' in content) {
            body = new FormData()
            body.append('file', new Blob([new Uint8Array([1, 2, 3])]), 'file')
          } else {
            body = new Uint8Array([1, 2, 3])
          }
        }
        const res = await fetch(url, { method: method.toUpperCase(), body, redirect: 'manual' })
        const what = `${method.toUpperCase()} ${url.pathname}${url.search}`
        const documented = op.responses[String(res.status)]
        assert.ok(documented !== undefined, `${what}: status ${res.status} is not documented`)
        const response = deref(documented, 'responses')
        const types = Object.keys(response.content ?? {})
        const received = (res.headers.get('content-type') ?? '').split(';')[0]?.trim() ?? ''
        await res.arrayBuffer()
        if (types.length === 0 || method === 'head') continue
        assert.ok(
          types.includes('*/*') || types.includes(received),
          `${what}: ${res.status} with Content-Type "${received}", documented: ${types.join(', ')}`,
        )
      }
    })
  })
})
