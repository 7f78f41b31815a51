import { ChronoError } from '../errors';
import { SEGMENT_HEADER } from '../format/constants';
import { unitBytes } from '../format/record';
import { DEFAULTS } from '../options';
import { SEAL_RESERVE_BYTES } from '../segment/segment-writer';

export interface Geometry {
  volumeSizeBytes: number;
  blockSizeBytes: number;
  segmentSizeBytes: number;
  workingSetSegments?: number;
}

/** Blocks one segment holds when filled with large writes (record headers are amortised). */
export function blocksPerSegment(segmentSizeBytes: number, blockSizeBytes: number): number {
  return Math.floor((segmentSizeBytes - SEGMENT_HEADER.lengthBytes - SEAL_RESERVE_BYTES) / (unitBytes(blockSizeBytes) + 1));
}

/** Smallest capacity ratio accepted: below it copy-forward write amplification explodes. */
export const MIN_OVER_PROVISION_RATIO = 1.25;

/**
 * Checks a geometry and fills in the working-set length K. The working set must hold the whole
 * volume with room to spare, or the oldest segment would always be mostly live and copy-forward
 * would never finish; refused with the smallest K that would work.
 */
export function planGeometry(g: Geometry): Required<Geometry> {
  const bs = g.blockSizeBytes;
  if (!Number.isInteger(bs) || bs < DEFAULTS.minBlockSizeBytes || bs > DEFAULTS.maxBlockSizeBytes || (bs & (bs - 1)) !== 0) {
    throw new ChronoError('BAD_ARGUMENT', `block size must be a power of two from ${DEFAULTS.minBlockSizeBytes} to ${DEFAULTS.maxBlockSizeBytes} bytes, got ${g.blockSizeBytes}`);
  }
  if (!Number.isSafeInteger(g.volumeSizeBytes) || g.volumeSizeBytes <= 0 || g.volumeSizeBytes % bs !== 0) {
    throw new ChronoError('BAD_ARGUMENT', `volume size must be a positive multiple of the block size (${bs}), got ${g.volumeSizeBytes}`);
  }
  if (g.volumeSizeBytes / bs > 2 ** 40) throw new ChronoError('BAD_ARGUMENT', 'volume has more than 2^40 blocks');
  const seg = g.segmentSizeBytes;
  if (!Number.isInteger(seg) || seg < DEFAULTS.minSegmentSizeBytes || seg > DEFAULTS.maxSegmentSizeBytes) {
    throw new ChronoError('BAD_ARGUMENT', `segment size must be from ${DEFAULTS.minSegmentSizeBytes} to ${DEFAULTS.maxSegmentSizeBytes} bytes, got ${seg}`);
  }
  const perSegment = blocksPerSegment(seg, bs);
  if (perSegment < 4) throw new ChronoError('BAD_ARGUMENT', `segment size ${seg} holds fewer than 4 blocks of ${bs} bytes`);
  const volumeBlocks = g.volumeSizeBytes / bs;
  const minK = Math.ceil((volumeBlocks * MIN_OVER_PROVISION_RATIO) / perSegment) + DEFAULTS.workingSetSlackSegments;
  const defaultK = Math.ceil((volumeBlocks * DEFAULTS.overProvisionRatio) / perSegment) + DEFAULTS.workingSetSlackSegments;
  const k = g.workingSetSegments ?? defaultK;
  if (!Number.isInteger(k) || k < minK) {
    throw new ChronoError('BAD_ARGUMENT', `a working set of ${k} segments of ${seg} bytes cannot hold a ${g.volumeSizeBytes}-byte volume with the ${MIN_OVER_PROVISION_RATIO}x margin copy-forward needs; use --working-set ${minK} or more (default ${defaultK})`, { minK, defaultK });
  }
  return { volumeSizeBytes: g.volumeSizeBytes, blockSizeBytes: bs, segmentSizeBytes: seg, workingSetSegments: k };
}
