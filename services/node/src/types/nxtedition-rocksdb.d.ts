// Minimal typings for the parts of @nxtedition/rocksdb (abstract-level API) that Mycel uses;
// the package ships none.
declare module '@nxtedition/rocksdb' {
  interface ColumnOption {
    column?: unknown
  }
  interface ReadOptions extends ColumnOption {
    valueEncoding?: 'buffer' | 'utf8'
    fillCache?: boolean
  }
  interface ChainedBatch {
    put(key: Buffer, value: Buffer, options?: ColumnOption): ChainedBatch
    del(key: Buffer, options?: ColumnOption): ChainedBatch
    write(options?: { sync?: boolean }): Promise<void>
  }
  interface IteratorOptions extends ColumnOption {
    gt?: Buffer
    gte?: Buffer
    lt?: Buffer
    lte?: Buffer
    limit?: number
    keys?: boolean
    values?: boolean
    keyEncoding?: 'buffer'
    valueEncoding?: 'buffer'
    fillCache?: boolean
  }
  interface Iterator {
    nextv(size: number): Promise<Array<[Buffer, Buffer]>>
    close(): Promise<void>
    [Symbol.asyncIterator](): AsyncIterator<[Buffer, Buffer]>
  }
  export class RocksLevel {
    constructor(location: string, options?: Record<string, unknown>)
    readonly columns: Record<string, unknown>
    readonly status: string
    open(options?: Record<string, unknown>): Promise<void>
    close(): Promise<void>
    getMany(keys: Buffer[], options?: ReadOptions): Promise<Array<Buffer | string | undefined>>
    batch(): ChainedBatch
    iterator(options?: IteratorOptions): Iterator
    getProperty?(name: string): string
  }
}
