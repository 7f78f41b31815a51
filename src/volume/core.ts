import type { Logger } from 'pino';
import { ArchiveReader } from '../archive/archive-reader';
import { BackingStore } from '../archive/backing-store';
import { Superblock } from '../format/superblock';
import { VersionIndex } from '../index/version-index';
import { RetentionState } from '../retention/retention-state';
import { SegmentSet } from '../segment/segment-set';
import { FileSystem } from '../storage/file-system';
import { BlockReader } from './block-reader';
import type { Checkpointer } from './checkpoint';
import { EventList } from './events';
import { VolumeDir } from './volume-dir';

export interface VolumeCounters {
  /** User bytes written (data and zeros), the denominator of write amplification. */
  bytesWritten: number;
  /** Bytes of block data rewritten by copy-forward. */
  copyForwardBytes: number;
  versions: number;
}

/** The state the volume's parts share. One object, passed explicitly, no globals. */
export interface Core {
  sb: Superblock;
  fs: FileSystem;
  dir: VolumeDir;
  segments: SegmentSet;
  index: VersionIndex;
  events: EventList;
  retention: RetentionState;
  store: BackingStore;
  archive: ArchiveReader;
  reader: BlockReader;
  log: Logger;
  nextSeq: number;
  nextEventId: number;
  lastTimeMs: number;
  changedSinceEvent: number;
  counters: VolumeCounters;
  /** Last archive failure, cleared by the next success; shown in status. */
  archiveError?: string;
  /**
   * The segment detached from the working set whose archiving runs in the background (at most
   * one: turnover.ts). `done` settles with the failure, if any; it never rejects.
   */
  leaving?: { segment: number; done: Promise<unknown> };
  maxBlocksPerRecord: number;
  checkpointer: Checkpointer;
}
