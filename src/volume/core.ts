import type { Logger } from 'pino';
import { ArchiveReader } from '../archive/archive-reader';
import { ArchiveCatalog } from '../archive/archive-catalog';
import { BackingStore } from '../archive/backing-store';
import { Superblock } from '../format/superblock';
import { VersionIndex } from '../index/version-index';
import { RetentionState } from './retention-state';
import { SegmentSet } from '../segment/segment-set';
import { FileSystem } from '../storage/file-system';
import { BlockReader } from './block-reader';
import type { Archiver } from './archiver';
import type { Checkpointer } from './checkpoint';
import { EventList } from './events';
import { ForegroundActivity } from './prune-pacer';
import { VolumeDir } from './volume-dir';
import { VolumeLog } from './volume-log';

/**
 * The state the volume's parts share. One object, passed explicitly, no globals; all it holds
 * is fixed at open except the archive's progress and the segments leaving. What changes per record is the VolumeLog's.
 */
export interface Core {
  readonly sb: Superblock;
  readonly fs: FileSystem;
  readonly dir: VolumeDir;
  readonly segments: SegmentSet;
  readonly index: VersionIndex;
  readonly events: EventList;
  /** Pins, forgotten events and the continuous span's start (retention.json). */
  readonly retention: RetentionState;
  readonly store: BackingStore;
  readonly archive: ArchiveReader;
  /** What prune compacted or deleted (catalog.cvct): resolves archived segment ids to objects. */
  readonly catalog: ArchiveCatalog;
  readonly reader: BlockReader;
  readonly log: Logger;
  /** Appends and applies records; owns the sequence, clock, counters and changed-since-event. */
  readonly volumeLog: VolumeLog;
  /** Archives each segment as it is sealed (archiver.ts); its last failure shows in status. */
  readonly archiver: Archiver;
  /**
   * Segments detached from the working set, oldest first, each recycled once the archive holds
   * it (turnover.ts): normally at most one; while the archive is down up to backlog.segments + 1.
   */
  readonly leaving: number[];
  /** --archive-backlog (whole segments) and --archive-stall-timeout; `waitingSinceMs` while a write waits for a full backlog. */
  readonly backlog: { segments: number; stallTimeoutMs: number; waitingSinceMs?: number };
  readonly maxBlocksPerRecord: number;
  readonly checkpointer: Checkpointer;
  /** Reads and writes from the edges, counted: background work (prune) yields to them. */
  readonly foreground: ForegroundActivity;
}
