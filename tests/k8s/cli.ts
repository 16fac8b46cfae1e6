/**
 * `make k8s-up` / `make k8s-down`: the test cluster of cluster.ts for trying the chart by hand.
 *
 *   node tests/dist/k8s/cli.js up      start it and load IMAGE into it (env: IMAGE, HELM, K8S_TOOLS)
 *   node tests/dist/k8s/cli.js down    stop it and remove everything it made on the host
 */
import { join, relative } from 'node:path'
import { Cluster, HELPER_IMAGE } from './cluster.js'

const root = process.cwd()

async function up(): Promise<void> {
  const image = process.env.IMAGE
  const tools = process.env.K8S_TOOLS
  const helm = process.env.HELM
  if (!image || !tools || !helm) throw new Error('IMAGE, K8S_TOOLS and HELM must be set (use make k8s-up)')
  const cluster = new Cluster({ tools, helm, state: join(root, '.test-tmp/k8s') })
  await Cluster.lock()
  try {
    await cluster.up(null)
    await cluster.loadImage(image)
    await cluster.loadImage(HELPER_IMAGE)
  } finally {
    Cluster.unlock()
  }
  const i = image.lastIndexOf(':')
  const values = relative(root, join(root, 'deploy/values-single-node.yaml'))
  process.stdout.write(`
A single-node Kubernetes ${cluster.tools.kubernetes} runs in the network namespace mycel-k8s, with the
image ${image} in its containerd. kubectl and helm reach it only from inside that namespace:

  tests/k8s/kubectl get nodes,pods -A
  tests/k8s/helm install mycel charts/mycel -n mycel --create-namespace -f ${values} \\
      --set image.tag=${image.slice(i + 1)} --wait
  tests/k8s/helm test mycel -n mycel --logs
  tests/k8s/kubectl -n mycel exec -it mycel-node-0 -- node -e "fetch('http://mycel-gateway:8080/mycel/v1/status').then(r=>r.text()).then(console.log)"

(or: nsenter --net=/run/netns/mycel-k8s -- bash, with KUBECONFIG=${cluster.kubeconfig})
Logs of the cluster's own processes: ${relative(root, join(cluster.paths.state, 'logs'))}/. Stop it with: make k8s-down
`)
}

const cmd = process.argv[2]
async function down(): Promise<void> {
  await Cluster.lock()
  try {
    await Cluster.down({ keepLogs: true })
  } finally {
    Cluster.unlock()
  }
}

const done =
  cmd === 'up' ? up() : cmd === 'down' ? down() : Promise.reject(new Error('usage: cli.js up|down'))
done.catch((err: Error) => {
  process.stderr.write(`k8s: ${err.message}\n`)
  process.exitCode = 1
})
