import { createHash, createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { watchFiles } from '../config/watch-files.js'
import { ConfigInvalidError } from '../errors.js'
import type { Logger } from '../logger.js'

/** Where a process finds its certificate, key and the cluster CA (mounted Secret files). */
export interface TlsFilesConfig {
  certFile: string
  keyFile: string
  caFile: string
  /** How often the files are re-read in case a file-system event was missed. */
  reloadIntervalMs: number
}

/** One validated set of TLS files. */
export interface TlsMaterial {
  /** PEM certificate chain, leaf first. */
  cert: Buffer
  key: Buffer
  /** PEM bundle of the CA certificates that peers' certificates must chain to. */
  ca: Buffer
  subject: string
  notAfter: Date
  fingerprint256: string
}

/** The listener shapes of grpc-js's experimental CertificateProvider (structurally). */
type CaListener = (update: { caCertificate: Buffer } | null) => void
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void

/**
 * Reads and validates this process's certificate, key and the cluster CA, and reloads them when
 * the files change (fs.watch on their directories, which sees Kubernetes' atomic `..data` symlink
 * swap, and a periodic re-read as a fallback). A new set is published only if it is valid: a
 * half-written update or a key that does not match the certificate is logged and ignored, and the
 * previous set stays in use. Connections opened after a reload use the new set.
 *
 * It implements grpc-js's CertificateProvider interface, so server and channel credentials built
 * from it pick up every reload.
 */
export class TlsFiles {
  private material: TlsMaterial
  private digest: string
  private readonly caListeners = new Set<CaListener>()
  private readonly identityListeners = new Set<IdentityListener>()
  private readonly changeListeners = new Set<(m: TlsMaterial) => void>()
  private stopWatching: () => void = () => {}

  private constructor(
    readonly config: TlsFilesConfig,
    private readonly log: Logger | undefined,
    initial: { material: TlsMaterial; digest: string },
  ) {
    this.material = initial.material
    this.digest = initial.digest
  }

  /**
   * Loads and validates the files now (ConfigInvalidError with the reason if they are missing or
   * invalid) and starts watching them.
   */
  static load(config: TlsFilesConfig, log?: Logger): TlsFiles {
    let initial: { material: TlsMaterial; digest: string }
    try {
      initial = readTlsFiles(config)
    } catch (err) {
      throw new ConfigInvalidError([`TLS files: ${(err as Error).message}`])
    }
    const files = new TlsFiles(config, log, initial)
    files.warnIfExpiring()
    files.stopWatching = watchFiles(
      [config.certFile, config.keyFile, config.caFile],
      config.reloadIntervalMs,
      () => files.reload(),
    )
    return files
  }

  get current(): TlsMaterial {
    return this.material
  }

  /** Called with every new valid set; returns an unsubscribe function. */
  onChange(listener: (m: TlsMaterial) => void): () => void {
    this.changeListeners.add(listener)
    return () => this.changeListeners.delete(listener)
  }

  /** Re-reads the files; publishes them if they changed and are valid. Returns whether they did. */
  reload(): boolean {
    let next: { material: TlsMaterial; digest: string }
    try {
      next = readTlsFiles(this.config)
    } catch (err) {
      this.log?.error(
        { err: (err as Error).message, certFile: this.config.certFile },
        'TLS files changed but are not valid: keeping the previous certificate',
      )
      return false
    }
    if (next.digest === this.digest) return false
    this.material = next.material
    this.digest = next.digest
    this.log?.info(
      { subject: next.material.subject, notAfter: next.material.notAfter.toISOString() },
      'TLS certificate reloaded: new connections use it',
    )
    this.warnIfExpiring()
    for (const l of this.caListeners) l({ caCertificate: next.material.ca })
    for (const l of this.identityListeners)
      l({ certificate: next.material.cert, privateKey: next.material.key })
    for (const l of this.changeListeners) l(next.material)
    return true
  }

  close(): void {
    this.stopWatching()
  }

  // grpc-js CertificateProvider. Listeners get the current set asynchronously, as grpc-js's own
  // providers do: its credentials register their watcher only after adding the listener.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener)
    process.nextTick(() => {
      if (this.caListeners.has(listener)) listener({ caCertificate: this.material.ca })
    })
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener)
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener)
    process.nextTick(() => {
      if (this.identityListeners.has(listener))
        listener({ certificate: this.material.cert, privateKey: this.material.key })
    })
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener)
  }

  private warnIfExpiring(): void {
    const left = this.material.notAfter.getTime() - Date.now()
    if (left < 7 * 24 * 3600_000) {
      this.log?.warn(
        { subject: this.material.subject, notAfter: this.material.notAfter.toISOString() },
        'TLS certificate expires within 7 days: rotate it (the files are reloaded without a restart)',
      )
    }
  }
}

/** The certificates of a PEM bundle, in order. */
export function pemCertificates(pem: Buffer | string): X509Certificate[] {
  const blocks = String(pem).match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  return blocks.map((b) => new X509Certificate(b))
}

/**
 * Reads the three files and checks what a peer would otherwise refuse later, with a clear reason:
 * parseable PEM, a key that matches the certificate, a certificate issued by one of the CAs and
 * valid now.
 */
export function readTlsFiles(config: TlsFilesConfig): { material: TlsMaterial; digest: string } {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw new Error(`cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`)
    }
  }
  const cert = read(config.certFile, 'certificate')
  const key = read(config.keyFile, 'private key')
  const ca = read(config.caFile, 'CA bundle')
  const chain = pemCertificates(cert)
  const leaf = chain[0]
  if (leaf === undefined) throw new Error(`${config.certFile} holds no PEM certificate`)
  const cas = pemCertificates(ca)
  if (cas.length === 0) throw new Error(`${config.caFile} holds no PEM certificate`)
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(key)
  } catch (err) {
    throw new Error(`${config.keyFile} is not a PEM private key: ${(err as Error).message}`)
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new Error(`the key in ${config.keyFile} does not belong to the certificate in ${config.certFile}`)
  }
  // The leaf must chain to a CA of the bundle, directly or through the intermediates it carries.
  const issuers = [...chain.slice(1), ...cas]
  let current = leaf
  for (let depth = 0; ; depth++) {
    const issuer = issuers.find((c) => current.checkIssued(c) && current.verify(c.publicKey))
    if (issuer === undefined || depth > 8) {
      throw new Error(
        `the certificate in ${config.certFile} (${leaf.subject}) is not issued by the CA in ${config.caFile}`,
      )
    }
    if (cas.includes(issuer)) break
    current = issuer
  }
  const now = Date.now()
  if (leaf.validFromDate.getTime() > now) throw new Error(`certificate not valid before ${leaf.validFrom}`)
  if (leaf.validToDate.getTime() < now) throw new Error(`certificate expired on ${leaf.validTo}`)
  const digest = createHash('sha256')
    .update(cert)
    .update('\0')
    .update(key)
    .update('\0')
    .update(ca)
    .digest('hex')
  return {
    material: {
      cert,
      key,
      ca,
      subject: leaf.subject.replace(/\n/g, ', '),
      notAfter: leaf.validToDate,
      fingerprint256: leaf.fingerprint256,
    },
    digest,
  }
}
