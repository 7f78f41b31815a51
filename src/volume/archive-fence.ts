import { randomBytes } from 'node:crypto';
import { ChronoError, isChronoError } from '../errors';
import { ArchiveHead, decodeArchiveHead } from '../format/archive-head';
import { FILE_NAMES, RECORD_HEADER, RecordType, SEAL_PAYLOAD } from '../format/constants';
import { decodeSealPayload, readRecordHeader } from '../format/record';
import type { ArchiverParts } from './archiver';

/**
 * Fences off a second writer of one archive with this volume's id (a copied volume directory, or
 * one restored from an older backup) (docs/DESIGN.md rule 29). Its segments take the same ids
 * with other contents: archived, they would overwrite this volume's history, and a head it wrote
 * would make this volume believe segments archived that are not its own.
 *
 * The head found at open is the base. At open, a head whose `sealCrc` disagrees with this log's
 * own sealed copy of its lastSegment, or that names a segment past this log, is another
 * history's. Before each segment is archived the head is read again: anything but the base or
 * a head this process put (or tried to) is another writer's. Either way `ARCHIVE_CONFLICT`,
 * and nothing more is archived.
 */
export class ArchiveFence {
  /** New at each open: tells this process's heads from a copy's with the same contents. */
  readonly writer = randomWriter();
  /** The conflict found, sticky: the archiver puts nothing once it is set. */
  conflict?: ChronoError;
  /** The head's bytes as found at open or as last put: undefined, not read yet; null, none. */
  private base: Buffer | null | undefined;
  /** A head put that failed may still have landed: it is this process's too. */
  private tried?: Buffer;
  /** The base as found at open (a late read of it is no conflict). */
  private opened?: Buffer;

  constructor(private readonly core: ArchiverParts) {}

  /** The head found at open (bytes null: there is none). Throws ARCHIVE_CONFLICT for another history's. */
  adopt(bytes: Buffer | null, head?: ArchiveHead): void {
    if (head) this.checkHistory(head);
    this.base = bytes;
    this.opened = bytes ?? undefined;
  }

  /**
   * Before a segment is archived or a prune acts: the head is still one this process knows, the
   * base or one it put (or tried to). Prune checks while the archiver may put a head, so a read
   * that started before a put may return after it: any head this process wrote (its `writer`) or
   * the base found at open is its own, whenever it is read.
   */
  async check(): Promise<void> {
    if (this.conflict) throw this.conflict;
    let bytes: Buffer | null;
    try {
      bytes = await readHeadBytes(this.core.store);
    } catch (err) {
      // An encrypted head that fails authentication is damaged, like one failing its checksum:
      // whose it was is unknown, and this volume's next head replaces it.
      if (isChronoError(err, 'ARCHIVE_AUTH_FAILED')) return;
      throw err;
    }
    // Open could not read it: this is the base, checked as open would have.
    if (this.base === undefined) return void this.adoptRead(bytes);
    // None now: nobody else's to overwrite (what follows names this volume's own segments).
    if (bytes === null || [this.base, this.opened, this.tried].some((b) => b && bytes.equals(b))) return;
    let head: ArchiveHead;
    try {
      head = decodeArchiveHead(bytes);
    } catch {
      return; // damaged (a put of ours that landed short, bit rot): proves no other writer; the next head replaces it
    }
    if (head.writer === this.writer) return;
    this.fail(`the archive head changed under this volume: another process with volume id ${this.core.sb.volumeId.toString('hex')} archives to ${this.core.store.description} (a copy of this volume directory?)`);
  }

  /**
   * The head as read (null: none) becomes the base, checked: another volume's is refused
   * (FOREIGN_SEGMENT), another history's too (ARCHIVE_CONFLICT). A damaged one is the base as it
   * is (this volume's next head replaces it, as before the fence): not knowing whose it was, it
   * cannot be held against this volume. Returns the decoded head, or why it is unusable.
   */
  adoptRead(bytes: Buffer | null): { head?: ArchiveHead; damage?: string } {
    if (!bytes) {
      this.adopt(null);
      return {};
    }
    let head: ArchiveHead;
    try {
      head = decodeArchiveHead(bytes, { archive: this.core.store.description, file: FILE_NAMES.archiveHead });
    } catch (err) {
      this.core.log.warn({ err: (err as Error).message }, 'the archive head is damaged: the next archived segment rewrites it');
      this.adopt(bytes);
      return { damage: (err as Error).message };
    }
    if (!head.volumeId.equals(this.core.sb.volumeId)) throw new ChronoError('FOREIGN_SEGMENT', `${this.core.store.description}: the archive head belongs to another volume`);
    this.adopt(bytes, head);
    return { head };
  }

  noteTried(bytes: Buffer): void {
    this.tried = bytes;
  }

  notePut(bytes: Buffer): void {
    this.base = bytes;
    this.tried = undefined;
  }

  /** The SEAL bodyCrc of a sealed segment in primary; 0 when it cannot be read (unknown). */
  sealCrcOf(segment: number): number {
    const { segments } = this.core;
    const n = RECORD_HEADER.lengthBytes + SEAL_PAYLOAD.lengthBytes;
    try {
      const size = segments.source(segment).size;
      const tail = segments.readExact(segment, size - n, n);
      const h = readRecordHeader(tail, 0, tail.subarray(RECORD_HEADER.lengthBytes), { segment });
      if (h.type !== RecordType.SEAL) return 0;
      return decodeSealPayload(tail.subarray(RECORD_HEADER.lengthBytes)).bodyCrc;
    } catch {
      return 0;
    }
  }

  private checkHistory(head: ArchiveHead): void {
    // Heads written before these fields, or by `recover`, say nothing to check against.
    if (!head.writer) return;
    const { segments } = this.core;
    if (head.lastSegment >= segments.current.id) {
      this.fail(`the archive holds segments up to ${head.lastSegment}, past this volume's log (its newest is ${segments.current.id}): another copy of this volume wrote them, or this directory is older than its archive; recover from the archive, or give this volume another archive`);
    }
    // (A seal CRC unknown on either side, 0, proves nothing.)
    const own = head.sealCrc && segments.sealed.includes(head.lastSegment) ? this.sealCrcOf(head.lastSegment) : 0;
    if (own && own !== head.sealCrc) {
      this.fail(`the archive's segment ${head.lastSegment} is not this volume's (its seal differs): another copy of this volume wrote it; recover from the archive, or give this volume another archive`);
    }
  }

  private fail(message: string): never {
    this.conflict = new ChronoError('ARCHIVE_CONFLICT', message, { archive: this.core.store.description });
    this.core.log.error({ code: 'ARCHIVE_CONFLICT', err: message }, 'archiving stopped: the archive has another writer');
    throw this.conflict;
  }
}

/** The archive head's bytes, or null when there is none. */
export async function readHeadBytes(store: ArchiverParts['store']): Promise<Buffer | null> {
  return (await store.size(FILE_NAMES.archiveHead)) === undefined ? null : store.get(FILE_NAMES.archiveHead);
}

function randomWriter(): bigint {
  for (;;) {
    const w = randomBytes(8).readBigUInt64LE(0);
    if (w !== 0n) return w;
  }
}
