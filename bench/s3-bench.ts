import { PutObjectCommand } from '@aws-sdk/client-s3';
import { archiveKeyFromSecret } from '../src/archive/archive-key';
import { EncryptedStore } from '../src/archive/encrypted-store';
import { S3Store } from '../src/archive/s3-store';
import { startS3Server } from '../test/helpers/s3-server';
import { BenchResult, paired, patternChunk, seconds } from './lib';
import { benchS3Read } from './s3-read-bench';

/**
 * `--only s3`: archive upload throughput through the S3 store (multipart, retries, HeadObject
 * verification) vs the SDK's own single PutObject of the same bytes to the same server, in
 * back-to-back pairs (s3UploadRatio, target >= 0.9); and with encryption on vs off
 * (s3EncryptedUploadRatio, target >= 0.85). The server: CHRONOVOL_S3_ENDPOINT and
 * CHRONOVOL_S3_BUCKET (e.g. the local Ceph from scripts/ceph, credentials from the AWS chain),
 * else s3rver on loopback (a JavaScript server: slower than radosgw, so the ratio is milder).
 */
export async function benchS3(objectBytes = 64 << 20, rounds = 5): Promise<BenchResult> {
  const own = process.env.CHRONOVOL_S3_ENDPOINT ? undefined : await startS3Server('chronovol-bench');
  const endpoint = process.env.CHRONOVOL_S3_ENDPOINT ?? own!.endpoint;
  const bucket = process.env.CHRONOVOL_S3_BUCKET ?? own!.bucket;
  const store = new S3Store({ bucket, prefix: `bench-${Date.now()}`, endpoint });
  const sealed = new EncryptedStore(new S3Store({ bucket, prefix: `bench-enc-${Date.now()}`, endpoint }), archiveKeyFromSecret(Buffer.alloc(32, 9)));
  // An archive object arrives as parts (slices of the segment): 16 parts here.
  const parts = Array.from({ length: 16 }, (_, i) => patternChunk(objectBytes / 16, i + 1));
  const whole = Buffer.concat(parts);
  let n = 0;
  const rate = async (put: () => Promise<unknown>) => {
    const t = process.hrtime.bigint();
    await put();
    return objectBytes / seconds(t);
  };
  try {
    const upload = await paired(rounds,
      () => rate(() => store.client.send(new PutObjectCommand({ Bucket: bucket, Key: `bench-sdk/${n++}`, Body: whole, ContentLength: whole.length }))),
      () => rate(() => store.put(`segments/${n++}`, parts)));
    const enc = await paired(rounds, () => rate(() => store.put(`segments/${n++}`, parts)), () => rate(() => sealed.put(`segments/${n++}`, parts)));
    const mb = (x: number) => (x / 1e6).toFixed(0);
    const server = own ? 's3rver' : endpoint;
    const reads = await benchS3Read(endpoint, bucket, server, rounds);
    return {
      lines: [
        ...reads.lines,
        `s3UploadRatio: ${upload.ratio.toFixed(2)} (store ${mb(upload.ours)} MB/s vs SDK PutObject ${mb(upload.baseline)} MB/s, ${objectBytes >> 20} MiB objects, ${server}; pairs ${upload.ratios.map((r) => r.toFixed(2)).join(' ')})`,
        `s3EncryptedUploadRatio: ${enc.ratio.toFixed(2)} (encrypted ${mb(enc.ours)} MB/s vs plain ${mb(enc.baseline)} MB/s; pairs ${enc.ratios.map((r) => r.toFixed(2)).join(' ')})`,
      ],
      figures: { ...reads.figures, s3UploadRatio: upload.ratio, s3UploadMBps: upload.ours / 1e6, s3SdkPutMBps: upload.baseline / 1e6, s3EncryptedUploadRatio: enc.ratio, s3Server: server },
    };
  } finally {
    store.destroy();
    (sealed.inner as S3Store).destroy();
    await own?.stop();
  }
}
