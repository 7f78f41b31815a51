import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Readable } from 'node:stream';
import { ChronoError } from '../errors';
import { crc32c } from '../format/crc';
import { DEFAULTS } from '../options';
import { BackingStore, PutData, putParts } from './backing-store';
import { GatherBuffer } from './gather-buffer';
import { multipartPut } from './s3-multipart';
import { RetryPolicy, describeError, unavailable, withRetries } from './s3-retry';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket ('' or ending in '/'; a missing '/' is added). */
  prefix?: string;
  /** e.g. http://127.0.0.1:7480 for radosgw; AWS itself when absent. */
  endpoint?: string;
  region?: string;
  multipartThresholdBytes?: number;
  partSizeBytes?: number;
  partConcurrency?: number;
  retry?: Partial<RetryPolicy>;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Keys per ListObjectsV2 page (servers cap it at 1,000); smaller only to test paging cheaply. */
  listPageKeys?: number;
}

/** Metadata stored with every object: what the verification after a put compares. */
export const S3_META = { crc32c: 'chronovol-crc32c', size: 'chronovol-size' } as const;

/**
 * A backing store in an S3 bucket (AWS, Ceph radosgw, any S3 endpoint). Credentials come from
 * the SDK's standard chain only (environment, shared config and credentials files, profiles).
 * Every request is retried on failures that may pass (see s3-retry.ts); every put is verified
 * (HeadObject: size, and the CRC32C recorded in the object's metadata) before it returns.
 */
export class S3Store implements BackingStore {
  readonly description: string;
  readonly client: S3Client;
  readonly bucket: string;
  private readonly prefix: string;
  private readonly policy: RetryPolicy;
  private readonly idleTimeoutMs: number;
  private readonly thresholdBytes: number;
  private readonly partSizeBytes: number;
  private readonly partConcurrency: number;
  private readonly listPageKeys?: number;
  private readonly gather = new GatherBuffer(DEFAULTS.gatherBufferIdleReleaseMs);

  constructor(o: S3StoreOptions) {
    this.bucket = o.bucket;
    this.prefix = !o.prefix ? '' : o.prefix.endsWith('/') ? o.prefix : `${o.prefix}/`;
    this.description = `s3://${o.bucket}/${this.prefix}${o.endpoint ? ` at ${o.endpoint}` : ''}`;
    this.policy = {
      maxAttempts: o.retry?.maxAttempts ?? DEFAULTS.s3MaxAttempts,
      baseDelayMs: o.retry?.baseDelayMs ?? DEFAULTS.s3RetryBaseDelayMs,
      maxDelayMs: o.retry?.maxDelayMs ?? DEFAULTS.s3RetryMaxDelayMs,
    };
    this.idleTimeoutMs = o.idleTimeoutMs ?? DEFAULTS.s3IdleTimeoutMs;
    this.thresholdBytes = o.multipartThresholdBytes ?? DEFAULTS.s3MultipartThresholdBytes;
    this.partSizeBytes = o.partSizeBytes ?? DEFAULTS.s3PartSizeBytes;
    this.partConcurrency = o.partConcurrency ?? DEFAULTS.s3PartConcurrency;
    this.listPageKeys = o.listPageKeys;
    // The SDK warns on every start under Node 20 that its 2027 releases will need Node 22: noise
    // on every CLI command (package-lock.json pins a release that runs on 20).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.client = new S3Client({
      region: o.region ?? DEFAULTS.s3Region,
      endpoint: o.endpoint,
      forcePathStyle: true,
      // The SDK's default (checksums "when supported") sends streamed bodies aws-chunked with a
      // trailing checksum: radosgw refuses it (411), Swift too (501), and s3rver stores the
      // encoding itself as the object. Our own CRC32C in metadata is checked after every put.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1, // retries are ours (withRetries): one policy for requests and body reads
      requestHandler: { connectionTimeout: o.connectTimeoutMs ?? DEFAULTS.s3ConnectTimeoutMs, socketTimeout: this.idleTimeoutMs },
    });
  }

  /** The bucket key of a store key. */
  objectKey(key: string): string {
    if (key.startsWith('/') || key.split('/').includes('..')) throw new ChronoError('BAD_ARGUMENT', `bad archive key: ${key}`);
    return this.prefix + key;
  }

  private retry<T>(what: string, op: () => Promise<T>): Promise<T> {
    return withRetries(this.policy, what, op, (err, attempts) => this.mapError(what, err, attempts));
  }

  private mapError(what: string, err: unknown, attempts: number): Error {
    const d = describeError(err);
    if (d.code === 'NoSuchBucket') {
      return new ChronoError('ARCHIVE_UNAVAILABLE', `S3 bucket ${this.bucket} does not exist (${what})`, { bucket: this.bucket, ...d }, err);
    }
    if (d.status === 403 || d.code === 'AccessDenied' || d.code === 'InvalidAccessKeyId' || d.code === 'SignatureDoesNotMatch' || d.code === 'CredentialsProviderError') {
      return new ChronoError('ARCHIVE_UNAVAILABLE', `S3 refused ${what} on ${this.description}: ${d.code}: ${d.message} (credentials come from the AWS environment, config and credentials files, or AWS_PROFILE)`, { bucket: this.bucket, ...d }, err);
    }
    return unavailable(`${what} (${this.description})`, this.bucket, err, attempts);
  }

  async put(key: string, data: PutData): Promise<void> {
    // A stream (sealing) is gathered whole: its CRC32C goes in the metadata, ahead of the body.
    const gathered = Buffer.isBuffer(data) || Array.isArray(data) ? undefined : this.gather.fill(data);
    let ok = false;
    try {
      await this.putParts(key, gathered ? slices(gathered, BODY_PIECE_BYTES) : putParts(data));
      ok = true;
    } finally {
      if (gathered) this.gather.give(gathered, ok);
    }
  }

  private async putParts(key: string, parts: Buffer[]): Promise<void> {
    const total = parts.reduce((n, p) => n + p.length, 0);
    let crc = 0;
    for (const p of parts) crc = crc32c(p, crc);
    const crcHex = crc.toString(16).padStart(8, '0');
    const Metadata = { [S3_META.crc32c]: crcHex, [S3_META.size]: String(total) };
    const Key = this.objectKey(key);
    let etag: string | undefined;
    if (total < this.thresholdBytes) {
      // Parts are streamed as they lie (only a sealing stream was gathered, into the kept
      // buffer): a fresh 64 MiB copy cost the upload 5-10% of its time. A new stream per try:
      // the same bytes, idempotent.
      const body = () => (parts.length === 1 ? parts[0] : Readable.from(parts, { objectMode: false }));
      const res = await this.retry(`PutObject ${key}`, () => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: body(), ContentLength: total, Metadata })));
      etag = res.ETag;
    } else {
      etag = await multipartPut({
        client: this.client, bucket: this.bucket, key: Key, parts, totalBytes: total, metadata: Metadata,
        partSizeBytes: this.partSizeBytes, concurrency: this.partConcurrency,
        retry: (what, op) => this.retry(`${what} ${key}`, op),
        landed: async () => {
          const head = await this.head(key);
          return head?.ContentLength === total && head.Metadata?.[S3_META.crc32c] === crcHex;
        },
      });
    }
    await this.verifyPut(key, total, crcHex, etag);
  }

  /**
   * The object must be there, whole and ours before a put returns: its size, and the CRC32C we
   * computed, as the server stored them with it. The ETag too when the server gave one
   * (radosgw's CompleteMultipartUpload gives an empty one; HeadObject has the right one).
   */
  private async verifyPut(key: string, total: number, crcHex: string, etag: string | undefined): Promise<void> {
    const head = await this.head(key);
    const ctx = { key, bucket: this.bucket, expectedBytes: total };
    if (!head) throw new ChronoError('ARCHIVE_MISMATCH', `S3 object ${key} is not there after its upload`, ctx);
    if (head.ContentLength !== total) throw new ChronoError('ARCHIVE_MISMATCH', `S3 object ${key} holds ${head.ContentLength} bytes after an upload of ${total}`, { ...ctx, storedBytes: head.ContentLength });
    const stored = head.Metadata?.[S3_META.crc32c];
    if (stored !== crcHex) throw new ChronoError('ARCHIVE_MISMATCH', `S3 object ${key} is not the one uploaded (CRC32C ${stored ?? 'absent'}, expected ${crcHex})`, { ...ctx, storedCrc: stored });
    if (etag && head.ETag && etag !== head.ETag) throw new ChronoError('ARCHIVE_MISMATCH', `S3 object ${key} has ETag ${head.ETag}, its upload returned ${etag}`, { ...ctx, etag, storedEtag: head.ETag });
  }

  private async head(key: string) {
    const Key = this.objectKey(key);
    return this.retry(`HeadObject ${key}`, async () => {
      try {
        return await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      } catch (err) {
        const d = describeError(err);
        if (d.status === 404 || d.code === 'NotFound' || d.code === 'NoSuchKey') return undefined;
        throw err;
      }
    });
  }

  async size(key: string): Promise<number | undefined> {
    return (await this.head(key))?.ContentLength;
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    if (length === 0) {
      const size = await this.size(key);
      if (size === undefined) throw missing(key);
      if (offset > size) throw short(key, offset, length);
      return Buffer.alloc(0);
    }
    return this.fetch(key, offset, length);
  }

  async get(key: string): Promise<Buffer> {
    return this.fetch(key);
  }

  async getTail(key: string, length: number): Promise<{ data: Buffer; sizeBytes: number }> {
    const Key = this.objectKey(key);
    const got = await this.retry(`GetObject ${key} bytes=-${length}`, async () => {
      let res;
      try {
        res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=-${length}` }));
      } catch (err) {
        const d = describeError(err);
        if (d.status === 404 || d.code === 'NoSuchKey') throw missing(key);
        if (d.status === 416 || d.code === 'InvalidRange') return undefined; // an empty object
        throw err;
      }
      const body = await readBody(res.Body as Readable, this.idleTimeoutMs);
      if (res.ContentLength !== undefined && body.length < res.ContentLength) throw cutShort(key, body.length, res.ContentLength);
      // "bytes first-last/size"; a server that ignores the Range sends the whole object (200).
      const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(res.ContentRange ?? '');
      if (!m) return { data: body.subarray(Math.max(0, body.length - length)), sizeBytes: body.length };
      const [from, to, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
      if (to !== size - 1 || body.length !== to - from + 1) return undefined; // not the tail asked for: ask the long way
      return { data: body.subarray(Math.max(0, body.length - length)), sizeBytes: size };
    });
    if (got) return got;
    const sizeBytes = await this.size(key);
    if (sizeBytes === undefined) throw missing(key);
    const from = Math.max(0, sizeBytes - length);
    return { data: await this.getRange(key, from, sizeBytes - from), sizeBytes };
  }

  /** GetObject, whole or ranged, its body read inside the retry (a reset mid-body retries too). */
  private async fetch(key: string, offset?: number, length?: number): Promise<Buffer> {
    const Key = this.objectKey(key);
    const Range = offset === undefined ? undefined : `bytes=${offset}-${offset + length! - 1}`;
    return this.retry(`GetObject ${key}${Range ? ` ${Range}` : ''}`, async () => {
      let res;
      try {
        res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range }));
      } catch (err) {
        const d = describeError(err);
        if (d.status === 404 || d.code === 'NoSuchKey') throw missing(key);
        if (d.status === 416 || d.code === 'InvalidRange') throw short(key, offset ?? 0, length ?? 0);
        throw err;
      }
      const body = await readBody(res.Body as Readable, this.idleTimeoutMs);
      if (offset === undefined) {
        if (res.ContentLength !== undefined && body.length !== res.ContentLength) throw cutShort(key, body.length, res.ContentLength);
        return body;
      }
      if (res.ContentLength !== undefined && body.length < res.ContentLength) throw cutShort(key, body.length, res.ContentLength);
      // More than asked for: a server that ignored the Range (200, the whole object) or widened it
      // (s3rver answers bytes=0-0 with everything): cut out the bytes asked for.
      const from = Number(/^bytes (\d+)-/.exec(res.ContentRange ?? '')?.[1] ?? 0);
      const data = body.length > length! ? body.subarray(offset - from, offset - from + length!) : body;
      if (data.length !== length) throw short(key, offset, length!);
      return data;
    });
  }

  async list(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const res = await this.retry(`ListObjectsV2 ${prefix}`, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token, MaxKeys: this.listPageKeys })),
      );
      for (const o of res.Contents ?? []) if (o.Key) keys.push(o.Key.slice(this.prefix.length));
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    // Deleting an absent key succeeds in S3: a retried delete whose first try got through is fine.
    await this.retry(`DeleteObject ${key}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
  }

  destroy(): void {
    this.gather.release();
    this.client.destroy();
  }
}

/**
 * A body handed to the SDK as one large Buffer went up slower than the same bytes as a stream of
 * 4 MiB pieces (an encrypted 64 MiB segment: 250-270 ms against 220 on the local Ceph).
 */
const BODY_PIECE_BYTES = 4 * 1024 * 1024;

function slices(buf: Buffer, pieceBytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < buf.length; at += pieceBytes) out.push(buf.subarray(at, Math.min(buf.length, at + pieceBytes)));
  return out.length ? out : [buf];
}

function missing(key: string): ChronoError {
  return new ChronoError('ARCHIVE_MISSING', `archive object missing: ${key}`, { key });
}
function short(key: string, offset: number, length: number): ChronoError {
  return new ChronoError('ARCHIVE_MISSING', `archive object ${key} is shorter than expected`, { key, offset, length });
}
/** A body that ended before its Content-Length: the connection broke; worth another try. */
function cutShort(key: string, got: number, expected: number): ChronoError {
  return new ChronoError('ARCHIVE_UNAVAILABLE', `S3 response for ${key} ended after ${got} of ${expected} bytes`, { key, got, expected, retryable: true });
}

/** Reads a response body whole; a body that goes silent for `idleMs` is abandoned (retryable). */
async function readBody(body: Readable, idleMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => body.destroy(Object.assign(new Error(`S3 response stalled for ${idleMs} ms`), { code: 'ETIMEDOUT' })), idleMs);
  };
  arm();
  try {
    for await (const c of body) {
      chunks.push(c as Buffer);
      arm();
    }
  } finally {
    clearTimeout(timer);
  }
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
}
