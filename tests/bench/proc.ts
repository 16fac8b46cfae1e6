import { spawnSync } from 'node:child_process'
import { readFile } from 'node:fs/promises'

/** Linux USER_HZ: the unit of /proc/PID/stat CPU times. */
const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim() || 100)

/** User + system CPU seconds a process has used so far (/proc/PID/stat, fields 14 and 15). */
export async function cpuSeconds(pid: number | undefined): Promise<number> {
  if (pid === undefined) return Number.NaN
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
  } catch {
    return Number.NaN
  }
}

export async function cpuSnapshot(pids: Record<string, number | undefined>): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [name, pid] of Object.entries(pids)) out[name] = await cpuSeconds(pid)
  return out
}
