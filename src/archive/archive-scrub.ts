import { isChronoError } from '../errors';
import { FILE_NAMES, parseGenerationFileName, parseSegmentFileName } from '../format/constants';
import { Superblock, decodeSuperblock } from '../format/superblock';
import { DEFAULTS } from '../options';
import { mapLimit } from '../util/map-limit';
import { describeBreak, readLink, traceArchiveChain } from './archive-chain';
import { parseArchiveObject } from './archive-object';
import { ArchiveCatalog } from './archive-catalog';
import { BackingStore } from './backing-store';

export interface ScrubProblem {
  kind: 'archive-superblock' | 'archived-segment' | 'archive-missing' | 'archive-unreachable' | 'archive-catalog';
  segment?: number;
  /** The code the damage raised (BAD_LENGTH, BAD_CHECKSUM, ARCHIVE_MISSING …). */
  code?: string;
  message: string;
}

export interface ScrubReport {
  ok: boolean;
  problems: ScrubProblem[];
  checked: {
    /** Every object the listing returned. */
    objects: number;
    /** Archived segments whose header and trailer were read and checked. */
    segmentHeads: number;
    /** Archived segments read whole: object CRC and every record's CRC. */
    segmentsRead: number;
    bytesRead: number;
  };
  /** The share of segments whose data was read (--read-data), and the seed that chose them. */
  readDataFraction: number;
  seed: number;
}

export interface ScrubOptions {
  /** 0: heads only; 1: every segment read whole; between: that share, sampled by `seed`. */
  readDataFraction?: number;
  seed?: number;
  /** The volume's superblock, when known; else the archive's own copy is used. */
  sb?: Superblock;
  progress?: (done: number, total: number) => void;
}

/**
 * Scrubs an archive in place (restic's `check --read-data-subset`): every object listed; each
 * archived segment's header and trailer checked (cheap ranged reads), the chain from segment 1
 * to the archive head proven unbroken; then all or a sample of the segments read whole and
 * every checksum checked. Nothing is written. Every problem is reported, not just the first.
 */
export async function scrubArchive(store: BackingStore, o: ScrubOptions = {}): Promise<ScrubReport> {
  const fraction = Math.min(1, Math.max(0, o.readDataFraction ?? 0));
  const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
  const problems: ScrubProblem[] = [];
  const checked = { objects: 0, segmentHeads: 0, segmentsRead: 0, bytesRead: 0 };
  const report = (): ScrubReport => ({ ok: problems.length === 0, problems, checked, readDataFraction: fraction, seed });
  let keys: string[];
  try {
    // A directory store lists one level: its subdirectories come back as names, listed apart.
    const dirs: string[] = [FILE_NAMES.archiveSegmentsPrefix, FILE_NAMES.archiveUnrecoveredPrefix, FILE_NAMES.archiveUnrecoveredPrefix + FILE_NAMES.archiveSegmentsPrefix];
    const nested = (await Promise.all(dirs.map((d) => store.list(d)))).flat();
    keys = [...new Set([...(await store.list('')), ...nested])].filter((k) => !dirs.includes(`${k}/`));
  } catch (err) {
    problems.push({ kind: 'archive-unreachable', code: codeOf(err), message: (err as Error).message });
    return report();
  }
  checked.objects = keys.length;
  let sb = o.sb;
  try {
    const own = decodeSuperblock(await store.get(FILE_NAMES.archiveSuperblock), { archive: store.description });
    if (sb && !own.volumeId.equals(sb.volumeId)) problems.push({ kind: 'archive-superblock', code: 'FOREIGN_SEGMENT', message: `${FILE_NAMES.archiveSuperblock} belongs to another volume` });
    sb ??= own;
  } catch (err) {
    problems.push({ kind: 'archive-superblock', code: codeOf(err), message: `${FILE_NAMES.archiveSuperblock}: ${(err as Error).message}` });
  }
  if (!sb) return report(); // without a superblock no segment can be checked
  let catalog: ArchiveCatalog;
  try {
    catalog = await ArchiveCatalog.load(store, sb.volumeId);
  } catch (err) {
    problems.push({ kind: 'archive-catalog', code: codeOf(err), message: `${FILE_NAMES.archiveCatalog}: ${(err as Error).message}` });
    return report();
  }
  // The objects the catalog names (an id's other generations are a cut prune's leftovers, which the next prune removes).
  const ids = keys
    .filter((k) => k.startsWith(FILE_NAMES.archiveSegmentsPrefix))
    .map((k) => parseSegmentFileName(k.slice(FILE_NAMES.archiveSegmentsPrefix.length)) ?? parseGenerationFileName(k.slice(FILE_NAMES.archiveSegmentsPrefix.length))?.id)
    .filter((x): x is number => x !== undefined && !catalog.isDeleted(x) && keys.includes(catalog.keyOf(x)))
    .filter((x, i, a) => a.indexOf(x) === i)
    .sort((a, b) => a - b);
  const sample = sampleIds(ids, fraction, seed);
  const total = ids.length + sample.length;
  let done = 0;
  const bad = new Set<number>();
  await mapLimit(ids, DEFAULTS.archiveReadsInFlight, async (id) => {
    try {
      await readLink(store, sb, id, catalog);
      checked.segmentHeads++;
    } catch (err) {
      bad.add(id);
      problems.push({ kind: 'archived-segment', segment: id, code: codeOf(err), message: (err as Error).message });
    }
    o.progress?.(++done, total);
  });
  // Gaps and a newest object that is not the one the head names (heads of damaged objects are reported above).
  if (!bad.size) {
    try {
      const chain = await traceArchiveChain(store, sb, catalog);
      if (chain.break) problems.push({ kind: 'archive-missing', segment: chain.break.segment, code: 'ARCHIVE_MISSING', message: describeBreak(chain.break) });
    } catch (err) {
      problems.push({ kind: 'archive-missing', code: codeOf(err), message: (err as Error).message });
    }
  }
  await mapLimit(sample, DEFAULTS.archiveReadsInFlight, async (id) => {
    try {
      const obj = await store.get(catalog.keyOf(id));
      checked.bytesRead += obj.length;
      parseArchiveObject(obj, sb.blockSizeBytes, id, sb.volumeId);
      checked.segmentsRead++;
    } catch (err) {
      if (!bad.has(id)) problems.push({ kind: 'archived-segment', segment: id, code: codeOf(err), message: (err as Error).message });
    }
    o.progress?.(++done, total);
  });
  problems.sort((a, b) => (a.segment ?? 0) - (b.segment ?? 0));
  return report();
}

/** A seeded sample of `fraction` of the ids (at least one when the fraction is above 0), in order. */
export function sampleIds(ids: number[], fraction: number, seed: number): number[] {
  if (fraction >= 1) return [...ids];
  if (fraction <= 0 || !ids.length) return [];
  const want = Math.max(1, Math.round(ids.length * fraction));
  // A seeded Fisher-Yates prefix (mulberry32): the same seed picks the same segments again.
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  const pool = [...ids];
  for (let i = 0; i < want; i++) {
    const j = i + Math.floor(next() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return pool.slice(0, want).sort((x, y) => x - y);
}

function codeOf(err: unknown): string {
  return isChronoError(err) ? err.code : 'IO';
}
