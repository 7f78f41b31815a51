import { AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';

export interface MultipartPut {
  client: S3Client;
  bucket: string;
  key: string;
  /** The object's bytes, back to back; parts of the upload are cut from them at partSizeBytes. */
  parts: Buffer[];
  totalBytes: number;
  metadata: Record<string, string>;
  partSizeBytes: number;
  concurrency: number;
  retry: <T>(what: string, op: () => Promise<T>) => Promise<T>;
  /** Is the object under the key this upload's (size and CRC32C in its metadata)? */
  landed: () => Promise<boolean>;
}

/** The bytes [start, end) of `parts` laid back to back: slices where one part holds them all. */
export function sliceParts(parts: Buffer[], start: number, end: number): Buffer {
  const pieces: Buffer[] = [];
  let at = 0;
  for (const p of parts) {
    const pEnd = at + p.length;
    if (pEnd > start && at < end) pieces.push(p.subarray(Math.max(0, start - at), Math.min(p.length, end - at)));
    if (pEnd >= end) break;
    at = pEnd;
  }
  return pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, end - start);
}

/**
 * Uploads one object in parts, `concurrency` at a time, each part retried on its own (a part
 * re-sent under its number replaces itself: idempotent). Returns the ETag CompleteMultipartUpload
 * gave (radosgw gives an empty one). A failed upload is aborted, so its parts do not linger.
 */
export async function multipartPut(m: MultipartPut): Promise<string | undefined> {
  const created = await m.retry('CreateMultipartUpload', () =>
    m.client.send(new CreateMultipartUploadCommand({ Bucket: m.bucket, Key: m.key, Metadata: m.metadata })),
  );
  const UploadId = created.UploadId!;
  const count = Math.ceil(m.totalBytes / m.partSizeBytes);
  const etags: string[] = new Array(count);
  try {
    let next = 0;
    let failed = false;
    const worker = async () => {
      while (next < count && !failed) {
        const i = next++;
        const start = i * m.partSizeBytes;
        const Body = sliceParts(m.parts, start, Math.min(m.totalBytes, start + m.partSizeBytes));
        const res = await m.retry(`UploadPart ${i + 1}/${count}`, () =>
          m.client.send(new UploadPartCommand({ Bucket: m.bucket, Key: m.key, UploadId, PartNumber: i + 1, Body, ContentLength: Body.length })),
        );
        etags[i] = res.ETag!;
      }
    };
    // On a failed part the others stop taking parts, and every upload still running ends before
    // the abort: none goes on sending from the caller's buffers once this has returned.
    const workers = Array.from({ length: Math.min(m.concurrency, count) }, () => worker().catch((err) => {
      failed = true;
      throw err;
    }));
    const results = await Promise.allSettled(workers);
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
    const MultipartUpload = { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) };
    let triedBefore = false;
    const res = await m.retry('CompleteMultipartUpload', async () => {
      try {
        return await m.client.send(new CompleteMultipartUploadCommand({ Bucket: m.bucket, Key: m.key, UploadId, MultipartUpload }));
      } catch (err) {
        // A retry after a completion whose answer was lost finds the upload gone (NoSuchUpload;
        // s3rver answers 500): if the object under the key is this upload's, it completed.
        if (triedBefore && (await m.landed().catch(() => false))) return { ETag: undefined };
        triedBefore = true;
        throw err;
      }
    });
    return res.ETag;
  } catch (err) {
    await m.client.send(new AbortMultipartUploadCommand({ Bucket: m.bucket, Key: m.key, UploadId })).catch(() => undefined);
    throw err;
  }
}
