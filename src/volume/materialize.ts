import { RecordType } from '../format/constants';
import { HEADER_BYTES, RecordHeader, unitBytes } from '../format/record';
import { Location } from '../index/version-index';
import { DEFAULTS } from '../options';
import { Core } from './core';
import { LIVE_SEQ } from './events';
import { ensureSpace } from './turnover';

/**
 * Writes every live block that is not in the working set into it, as copy-forward records
 * fetched from the archive. After recovery this restores the guarantee that the working set
 * alone rebuilds the live volume.
 */
export async function materializeLive(core: Core, progress?: (done: number, total: number) => void): Promise<number> {
  const bs = core.sb.blockSizeBytes;
  const unit = unitBytes(bs);
  const total = core.sb.volumeSizeBytes / bs;
  let copied = 0;
  let run: Array<{ block: number; v: Location }> = [];
  // Reads of the next runs are in flight while one is appended: out of S3 each read is a round
  // trip (tens of ms), so one at a time left recovery waiting on the network.
  const ahead: Array<{ run: Array<{ block: number; v: Location }>; units: Promise<Buffer | undefined> }> = [];
  const append = async () => {
    const { run: r, units: pending } = ahead.shift()!;
    const first = r[0];
    const units = await pending;
    const payloadLength = units ? units.length : 0;
    await ensureSpace(core, HEADER_BYTES + payloadLength);
    const h: RecordHeader = {
      type: units ? RecordType.COPY : RecordType.COPY_ZERO, blockCount: r.length, seq: first.v.seq, timeMs: 0,
      firstBlock: first.block, payloadLength, originSegment: first.v.segment, originOffset: first.v.offset,
    };
    core.volumeLog.appendCopy(h, units);
    copied += r.length;
  };
  const flush = async () => {
    if (!run.length) return;
    const first = run[0];
    const units = first.v.offset !== 0 ? core.archive.read(first.v.segment, first.v.offset, run.length * unit, { block: first.block, seq: first.v.seq, unitBytes: unit }) : Promise.resolve(undefined);
    units.catch(() => undefined); // awaited in order by append; not an unhandled rejection meanwhile
    ahead.push({ run, units });
    run = [];
    if (ahead.length >= DEFAULTS.archiveReadsInFlight) await append();
  };
  for (let block = 0; block < total; block++) {
    const v = core.index.floor(block, LIVE_SEQ);
    if (!v || core.segments.has(core.index.where(block, v).segment)) {
      await flush();
    } else {
      const last = run[run.length - 1];
      const joins = last && last.v.seq === v.seq && last.v.segment === v.segment && last.block === block - 1 &&
        (v.offset === 0 ? last.v.offset === 0 : last.v.offset !== 0 && v.offset === last.v.offset + unit);
      if (!joins || run.length >= core.maxBlocksPerRecord) await flush();
      run.push({ block, v });
    }
    if (progress && block % 4096 === 0) progress(block, total);
  }
  await flush();
  while (ahead.length) await append();
  await core.segments.syncAll();
  progress?.(total, total);
  return copied;
}
