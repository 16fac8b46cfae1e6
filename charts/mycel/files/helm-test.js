// Run by `helm test` (templates/tests/test-gateway.yaml) with Node in the Mycel image: upload
// random bytes through the gateway Service with the admin token of the chart's tokens Secret, read
// them back, pin them (the gateway presents its own token to the nodes' API, over mutual TLS),
// then check /mycel/v1/status (ready, every node answering). Exit 0 means the release works end
// to end.
const { randomBytes } = require('node:crypto')

const url = process.env.GATEWAY_URL
const expectNodes = Number(process.env.EXPECT_NODES)
// The chart's admin token when the gateway requires tokens (auth.mode required).
const auth = process.env.MYCEL_TOKEN ? { authorization: `Bearer ${process.env.MYCEL_TOKEN}` } : {}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
// Alive in gossip and answering the gateway's latest probe.
const healthy = (node) => node.state === 'alive' && node.reachable

// The Service and the nodes may still be settling right after an install or upgrade.
async function retry(what, seconds, fn) {
  const deadline = Date.now() + seconds * 1000
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`${what}: ${err.message}`)
      await sleep(2000)
    }
  }
}

async function main() {
  const body = randomBytes(1024 * 1024 + 7) // five blocks and a root
  const cid = await retry('upload', 60, async () => {
    const res = await fetch(`${url}/mycel/v1/upload`, {
      method: 'POST',
      headers: auth,
      body,
      signal: AbortSignal.timeout(60000),
    })
    const text = await res.text()
    if (res.status !== 201) throw new Error(`HTTP ${res.status}: ${text.slice(0, 200)}`)
    return JSON.parse(text).cid
  })
  console.log(`uploaded ${body.length} bytes through ${url}: ${cid}`)
  const back = await retry('download', 60, async () => {
    const res = await fetch(`${url}/ipfs/${cid}`, { signal: AbortSignal.timeout(60000) })
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`)
    return Buffer.from(await res.arrayBuffer())
  })
  if (!back.equals(body)) throw new Error(`download: ${back.length} bytes that differ from the upload`)
  console.log(`downloaded ${back.length} bytes: identical`)
  await retry('pin', 60, async () => {
    const res = await fetch(`${url}/api/v0/pin/add?arg=${cid}`, {
      method: 'POST',
      headers: auth,
      signal: AbortSignal.timeout(60000),
    })
    if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`)
  })
  console.log(`pinned ${cid} on the nodes`)
  const status = await retry('cluster health', 120, async () => {
    const res = await fetch(`${url}/mycel/v1/status`, { headers: auth, signal: AbortSignal.timeout(30000) })
    if (res.status !== 200) throw new Error(`HTTP ${res.status}`)
    const st = await res.json()
    const up = st.nodes.filter(healthy).length
    if (!st.ready || up !== expectNodes) {
      throw new Error(`${up} of ${st.nodes.length} nodes healthy, expected ${expectNodes}; ready=${st.ready}`)
    }
    return st
  })
  console.log(`status: ready, ${expectNodes} of ${expectNodes} nodes healthy, R=${status.replication} W=${status.writeQuorum}`)
  for (const key of ['underReplicated', 'misplaced']) if (key in status) console.log(`status: ${key}=${JSON.stringify(status[key])}`)
}

main().then(
  () => console.log('PASS'),
  (err) => {
    console.error(`FAIL ${err.message}`)
    process.exit(1)
  },
)
