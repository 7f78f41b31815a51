import * as path from 'node:path';
import { BackingStore, PutData } from '../src/archive/backing-store';
import { ArchiveSettings, archiveSettings, openStore } from '../src/archive/open-store';
import { Volume } from '../src/volume/volume';
import { BenchResult, dropCaches, pairList, paired, patternChunk, scratch, seconds, settle } from './lib';

/**
 * `--only crypto`: archive encryption's cost on a local-directory archive (same disk as the
 * scratch dir), encrypted vs plain, same bytes, in back-to-back pairs (issue 12, target >= 0.85
 * each):
 * - archiveEncryptedUploadRatio: one durable `put` of a 64 MiB segment-sized object, as 16
 *   parts, through openStore with and without a key (the turnover upload's store call: seal,
 *   O_DIRECT write, fsync).
 * - archiveEncryptedReadRatio: a past image (event 1) of a 32 MiB volume whose blocks live only
 *   in the archive (the volume was overwritten past turnover), read sequentially in 1 MiB
 *   Volume.read calls from a freshly opened read-only volume, page cache dropped first.
 */
export async function benchArchiveCrypto(rounds = 9): Promise<BenchResult> {
  const upload = await uploadPairs(rounds);
  const read = await readPairs(rounds);
  const mb = (x: number) => (x / 1e6).toFixed(0);
  return {
    lines: [
      `archiveEncryptedUploadRatio: ${upload.ratio.toFixed(2)} (store.put of a 64 MiB object in 16 parts, durable, local dir: encrypted ${mb(upload.ours)} MB/s vs plain ${mb(upload.baseline)} MB/s; pairs ${pairList(upload)})`,
      `archiveEncryptedReadRatio: ${read.ratio.toFixed(2)} (past image of 32 MiB, all from the archive, cold cache, 1 MiB sequential reads: encrypted ${mb(read.ours)} MB/s vs plain ${mb(read.baseline)} MB/s; pairs ${pairList(read)})`,
    ],
    figures: {
      archiveEncryptedUploadRatio: upload.ratio,
      archiveEncryptedUploadMBps: upload.ours / 1e6,
      archivePlainUploadMBps: upload.baseline / 1e6,
      archiveEncryptedUploadPairs: upload.ratios,
      archiveEncryptedReadRatio: read.ratio,
      archiveEncryptedReadMBps: read.ours / 1e6,
      archivePlainReadMBps: read.baseline / 1e6,
      archiveEncryptedReadPairs: read.ratios,
    },
  };
}

function sealedSettings(dir: string): ArchiveSettings {
  return archiveSettings({ archive: path.join(dir, 'archive'), keyFile: path.join(dir, 'key'), newKey: true }).settings;
}

async function uploadPairs(rounds: number) {
  const objectBytes = 64 << 20;
  const parts = Array.from({ length: 16 }, (_, i) => patternChunk(objectBytes / 16, i + 1));
  const plain = openStore({ archive: path.join(scratch('crypto-put'), 'archive') }, { create: true });
  const sealed = openStore(sealedSettings(scratch('crypto-put-enc')), { create: true });
  let n = 0;
  const rate = async (store: BackingStore) => {
    const key = `segments/${n++}`;
    settle();
    const t = process.hrtime.bigint();
    await store.put(key, parts);
    const r = objectBytes / seconds(t);
    await store.delete(key);
    return r;
  };
  return paired(rounds, () => rate(plain), () => rate(sealed));
}

/** Counts the bytes the archive serves, to check the image really comes from it. */
class CountingStore implements BackingStore {
  bytes = 0;
  readonly description: string;
  constructor(private readonly inner: BackingStore) {
    this.description = inner.description;
  }
  put(key: string, data: PutData) {
    return this.inner.put(key, data);
  }
  async get(key: string) {
    const b = await this.inner.get(key);
    this.bytes += b.length;
    return b;
  }
  async getRange(key: string, offset: number, length: number) {
    const b = await this.inner.getRange(key, offset, length);
    this.bytes += b.length;
    return b;
  }
  size(key: string) {
    return this.inner.size(key);
  }
  list(prefix: string) {
    return this.inner.list(prefix);
  }
  delete(key: string) {
    return this.inner.delete(key);
  }
}

const VOLUME_BYTES = 32 << 20;
const READ_BYTES = 1 << 20;

/** A volume written over 5 times, a sync event after each pass: event 1's blocks end up archived. */
export async function pastVolume(settings: ArchiveSettings | undefined): Promise<{ dir: string; settings: ArchiveSettings }> {
  const base = scratch('crypto-vol');
  const s = settings ?? { archive: path.join(base, 'archive') };
  const dir = path.join(base, 'vol');
  await Volume.create(dir, { sizeBytes: VOLUME_BYTES, segmentSizeBytes: 16 << 20, archiveSettings: s });
  const v = await Volume.open(dir);
  try {
    for (let pass = 0; pass < 5; pass++) {
      for (let at = 0; at < VOLUME_BYTES; at += READ_BYTES) await v.write(at, patternChunk(READ_BYTES, pass * 1000 + at / READ_BYTES + 1));
      await v.sync({ label: `pass ${pass}` });
    }
  } finally {
    await v.close();
  }
  return { dir, settings: s };
}

async function readPairs(rounds: number) {
  const plain = await pastVolume(undefined);
  const encBase = scratch('crypto-vol-key');
  const sealed = await pastVolume(sealedSettings(encBase));
  const expect = patternChunk(READ_BYTES, 1);
  const rate = async (vol: { dir: string; settings: ArchiveSettings }) => {
    const store = new CountingStore(openStore(vol.settings));
    const v = await Volume.open(vol.dir, { store, readOnly: true });
    try {
      const point = v.resolvePoint('event:1');
      dropCaches();
      const t = process.hrtime.bigint();
      let first: Buffer | undefined;
      for (let at = 0; at < VOLUME_BYTES; at += READ_BYTES) {
        const b = await v.read(at, READ_BYTES, point);
        first ??= b;
      }
      const r = VOLUME_BYTES / seconds(t);
      if (!first!.equals(expect)) throw new Error(`bench: ${vol.dir} event 1 reads back other data`);
      // The blocks must come from the archive (not the working set) for this to measure it.
      if (store.bytes < VOLUME_BYTES) throw new Error(`bench: only ${store.bytes} of event 1's ${VOLUME_BYTES} bytes came from the archive of ${vol.dir}`);
      return r;
    } finally {
      await v.close();
    }
  };
  return paired(rounds, () => rate(plain), () => rate(sealed));
}
