import { access } from 'node:fs/promises'
import { basename, resolve } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { addPath, download, listTree, measurePath, type StatResult } from '@mycel/sdk'
import { type Command, Option } from 'commander'
import { clientFor, formatBytes, Progress, positiveInt, print, table, UsageError } from '../output.js'

/** put, get, cat, stat, ls: content in and out of the cluster. */
export function contentCommands(program: Command): void {
  program
    .command('put')
    .description('add a file, or a directory tree (as `ipfs add -r`: same CIDs), and print its CID')
    .argument('<path>', 'file or directory to add')
    .option('--durability <policy>', 'replicate:R or ec:K+M; default the cluster’s')
    .option('--no-pin', 'do not pin the added root')
    .option('--pin-name <name>', 'name stored with the pin')
    .addOption(new Option('--cid-version <n>', 'CID version').choices(['0', '1']).default('1'))
    .option('--raw-leaves', 'leaves as raw blocks (default with CIDv1)')
    .option('--no-raw-leaves', 'leaves as dag-pb nodes (required with CIDv0)')
    .option('--chunker <size-N>', 'fixed-size chunks of N bytes (default size-262144)')
    .option('-w, --wrap', 'wrap in a directory (Kubo’s -w)')
    .option('--hidden', 'include files and directories whose names start with "."')
    .option('-q, --quiet', 'print only the root CID')
    .action(async (path: string, o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const size = await measurePath(path, { hidden: o.hidden })
        const progress = new Progress(cmd, `put ${basename(path)}`, size.bytes)
        const cidVersion = Number(o.cidVersion) as 0 | 1
        const res = await addPath(client, path, {
          durability: o.durability,
          pin: o.pin,
          pinName: o.pinName,
          cidVersion,
          // commander sets rawLeaves only when a flag was given; otherwise Kubo's default applies.
          rawLeaves: cmd.getOptionValueSource('rawLeaves') === 'cli' ? o.rawLeaves : undefined,
          chunker: o.chunker,
          wrapWithDirectory: o.wrap ?? false,
          hidden: o.hidden ?? false,
          onProgress: (n) => progress.update(n),
        })
        progress.stop()
        print(cmd, res, () => {
          if (o.quiet) return res.cid
          const lines = res.entries.map((e) => `added ${e.cid} ${e.path}`)
          if (res.entries.length === 0) lines.push(`added ${res.cid}`)
          lines.push(
            `${formatBytes(res.size)} in ${size.files} file${size.files === 1 ? '' : 's'} at ${progress.rate(res.size)}${
              res.pinned.length > 0 ? `; pinned ${res.pinned.join(', ')}` : '; not pinned'
            }`,
          )
          return lines.join('\n')
        })
      } finally {
        client.close()
      }
    })

  program
    .command('get')
    .description('fetch a file or directory tree to the local disk')
    .argument('<cid-or-path>', 'CID, CID/path or /ipfs/CID/path')
    .option('-o, --output <path>', 'where to write (default: the last path segment, or the CID)')
    .option('-f, --force', 'overwrite an existing file')
    .action(async (target: string, o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const tree = await listTree(client, target)
        const name =
          target
            .replace(/^\/ipfs\//, '')
            .split('/')
            .filter(Boolean)
            .at(-1) ?? target
        const dest = resolve(o.output ?? name)
        if (!o.force && (await exists(dest))) {
          throw new UsageError(`${dest} exists; use -f to overwrite or -o to choose another path`)
        }
        const progress = new Progress(cmd, `get ${name}`, tree.bytes)
        await download(client, tree, dest, { onProgress: (n) => progress.update(n) })
        progress.stop()
        const result = {
          cid: target,
          path: dest,
          type: tree.type,
          bytes: tree.bytes,
          files: tree.files.length,
          skipped: tree.skipped,
        }
        print(cmd, result, () =>
          [
            `saved ${dest} (${tree.type === 'directory' ? `${tree.files.length} files, ` : ''}${formatBytes(tree.bytes)} at ${progress.rate(tree.bytes)})`,
            ...tree.skipped.map((s) => `skipped ${s} (neither a file nor a directory)`),
          ].join('\n'),
        )
      } finally {
        client.close()
      }
    })

  program
    .command('cat')
    .description('write a file’s bytes to stdout')
    .argument('<cid-or-path>', 'CID, CID/path or /ipfs/CID/path')
    .option('--offset <bytes>', 'first byte', '0')
    .option('--length <bytes>', 'at most this many bytes')
    .action(async (target: string, o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const offset = positiveInt(o.offset, '--offset', true)
        const length = o.length === undefined ? undefined : positiveInt(o.length, '--length', true)
        await pipeline(client.cat(target, { offset, length }), process.stdout, { end: false })
      } finally {
        client.close()
      }
    })

  program
    .command('stat')
    .description('describe a CID or path: type, sizes, links (and blocks with --blocks)')
    .argument('<cid-or-path>', 'CID, CID/path or /ipfs/CID/path')
    .option('--blocks', 'count the blocks of the DAG (walks it)')
    .action(async (target: string, o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const s: StatResult = await client.stat(target, { countBlocks: o.blocks ?? false })
        print(cmd, s, () =>
          [
            `CID:        ${s.cid}`,
            `Type:       ${s.type}`,
            `Size:       ${s.size} (${formatBytes(s.size)})`,
            `DAG size:   ${s.dagSize}`,
            `Block size: ${s.blockSize}`,
            `Links:      ${s.links}`,
            ...(s.blocks === undefined ? [] : [`Blocks:     ${s.blocks}`]),
          ].join('\n'),
        )
      } finally {
        client.close()
      }
    })

  program
    .command('ls')
    .description('list a directory')
    .argument('<cid-or-path>', 'CID, CID/path or /ipfs/CID/path')
    .action(async (target: string, _o, cmd: Command) => {
      const client = clientFor(cmd)
      try {
        const entries = await client.ls(target)
        print(cmd, entries, () =>
          entries.length === 0
            ? ''
            : table(
                ['CID', 'TYPE', 'SIZE', 'NAME'],
                entries.map((e) => [e.cid, e.type, String(e.size), e.name]),
              ),
        )
      } finally {
        client.close()
      }
    })
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
