import { z } from 'zod'
import { ConfigInvalidError } from '../errors.js'

/**
 * Environment-driven configuration: each setting is one MYCEL_* variable, the same names the
 * container image and the Helm chart set. Parsing lists every invalid variable at once.
 */

export function parseEnv<S extends z.ZodType>(
  schema: S,
  keys: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Readonly<z.infer<S>> {
  const input: Record<string, string | undefined> = {}
  for (const key of keys) {
    const value = env[key]
    // An empty variable means "not set", as in most shells' ${VAR:-default}.
    input[key] = value === undefined || value === '' ? undefined : value
  }
  const result = schema.safeParse(input)
  if (!result.success) {
    throw new ConfigInvalidError(
      result.error.issues.map((issue) => {
        const key = issue.path.join('.') || '(config)'
        const given = issue.path.length > 0 ? input[String(issue.path[0])] : undefined
        return `${key}: ${issue.message}${given !== undefined ? ` (got "${given}")` : ''}`
      }),
    )
  }
  return Object.freeze(result.data)
}

/** host:port with a port in range; host may be a name, IPv4 or [IPv6]. */
export const hostPort = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/, 'expected host:port')
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1))
    return port >= 0 && port <= 65535
  }, 'port must be 0-65535')

export const positiveInt = z.coerce.number().int().positive()
export const nonNegativeInt = z.coerce.number().int().nonnegative()
export const logLevel = z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info')
export const boolFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes')

export function splitHostPort(addr: string): { host: string; port: number } {
  const i = addr.lastIndexOf(':')
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '')
  return { host, port: Number(addr.slice(i + 1)) }
}
