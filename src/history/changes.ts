import { VersionIndex } from '../index/version-index';
import { BlockExtent, extentBlocks, indexDiff } from './index-diff';

/** A diff as `diff --json` prints it and events/<event>/changes.json serves it. */
export interface Changes {
  from: string;
  to: string;
  blockSizeBytes: number;
  extents: number;
  blocks: number;
  bytes: number;
  changes: Array<BlockExtent & { offset: number; length: number }>;
}

export function changesBetween(index: VersionIndex, blockSizeBytes: number, from: { name: string; seqLimit: number }, to: { name: string; seqLimit: number }, blockCount?: number): Changes {
  const extents = indexDiff(index, from.seqLimit, to.seqLimit, blockCount);
  const blocks = extentBlocks(extents);
  return {
    from: from.name, to: to.name, blockSizeBytes, extents: extents.length, blocks, bytes: blocks * blockSizeBytes,
    changes: extents.map((e) => ({ ...e, offset: e.firstBlock * blockSizeBytes, length: e.blockCount * blockSizeBytes })),
  };
}
