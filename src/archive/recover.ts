import { ChronoError, isChronoError } from '../errors';
import { FILE_NAMES, parseSegmentFileName } from '../format/constants';
import { decodeSuperblock } from '../format/superblock';
import { VersionIndex } from '../index/version-index';
import { writeFileDurable } from '../storage/durable-file';
import { FileSystem } from '../storage/file-system';
import { NodeFileSystem } from '../storage/node-file-system';
import { applyRecord } from '../volume/apply-record';
import { Core } from '../volume/core';
import { EventList } from '../volume/events';
import { materializeLive } from '../volume/materialize';
import { Volume } from '../volume/volume';
import { VolumeDir } from '../volume/volume-dir';
import { archiveKey, parseArchiveObject } from './archive-object';
import { BackingStore } from './backing-store';
import { ArchiveSettings, archiveSettings, openStore } from './open-store';

export interface RecoverReport {
  segments: number;
  events: number;
  versions: number;
  lastSeq: number;
  materializedBlocks: number;
}

export interface RecoverOptions {
  fs?: FileSystem;
  store?: BackingStore;
  progress?: (phase: string, done: number, total: number) => void;
}

/**
 * Disaster recovery: rebuilds a volume directory from the backing store alone. The archive
 * carries the superblock and every segment; the index is rebuilt from them, then the live
 * volume is copied into a fresh working set.
 */
export async function recoverFromArchive(archive: string | ArchiveSettings, dir: string, o: RecoverOptions = {}): Promise<RecoverReport> {
  const fs = o.fs ?? new NodeFileSystem();
  const settings = typeof archive === 'string' ? archiveSettings({ archive }).settings : archive;
  const store = o.store ?? openStore(settings, { fs });
  const vd = new VolumeDir(fs, dir);
  if (vd.isVolume()) throw new ChronoError('EXISTS', `${dir} already holds a volume; recover into an empty directory`);
  const sbBytes = await store.get(FILE_NAMES.archiveSuperblock).catch((err) => {
    if (isChronoError(err, 'ARCHIVE_WRONG_KEY') || isChronoError(err, 'ARCHIVE_AUTH_FAILED')) throw err; // an archive, but not readable with this key
    throw new ChronoError('NOT_A_VOLUME', `${store.description} holds no chronovol archive (${(err as Error).message})`, {}, err);
  });
  const sb = decodeSuperblock(sbBytes, { archive: store.description });
  const ids = (await store.list(FILE_NAMES.archiveSegmentsPrefix))
    .map((k) => parseSegmentFileName(k.slice(FILE_NAMES.archiveSegmentsPrefix.length)))
    .filter((x): x is number => x !== undefined);
  for (let i = 1; i < ids.length; i++) {
    if (ids[i] !== ids[i - 1] + 1) throw new ChronoError('ARCHIVE_MISSING', `archive has a gap: segment ${ids[i - 1] + 1} is missing`, { segment: ids[i - 1] + 1 });
  }
  fs.mkdirp(vd.segmentsDir);
  fs.mkdirp(vd.indexDir);
  const index = new VersionIndex(fs, vd.indexDir);
  // Enough of a Core for applyRecord: the log's meaning is defined once.
  const lite = { sb, index, events: new EventList(), counters: { bytesWritten: 0, copyForwardBytes: 0, versions: 0 }, changedSinceEvent: 0, nextEventId: 1, nextSeq: 1, lastTimeMs: 0 } as unknown as Core;
  ids.forEach((id, n) => o.progress?.('index', n, ids.length));
  for (const [n, id] of ids.entries()) {
    const { scan, table } = parseArchiveObject(await store.get(archiveKey(id)), sb.blockSizeBytes, id, sb.volumeId);
    scan.records.forEach((r, i) => applyRecord(lite, id, table.primary[i], r.header, r.payload));
    o.progress?.('index', n + 1, ids.length);
  }
  const next = (ids[ids.length - 1] ?? 0) + 1;
  await index.checkpoint({
    covered: { segment: next, offset: 0 }, nextSeq: lite.nextSeq, nextEventId: lite.nextEventId, lastTimeMs: lite.lastTimeMs,
    events: lite.events.all, changedSinceEvent: lite.changedSinceEvent, stats: lite.counters,
  });
  vd.writeConfig(settings);
  writeFileDurable(fs, vd.superblockPath, sbBytes);
  const vol = await Volume.open(dir, { fs, store });
  try {
    const materialized = await materializeLive(vol.internals, (d, t) => o.progress?.('working set', d, t));
    return { segments: ids.length, events: lite.events.all.length, versions: lite.counters.versions, lastSeq: lite.nextSeq - 1, materializedBlocks: materialized };
  } finally {
    await vol.close();
  }
}
