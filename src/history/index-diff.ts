import { VersionIndex } from '../index/version-index';

/** A run of consecutive blocks. */
export interface BlockExtent {
  firstBlock: number;
  blockCount: number;
}

/**
 * The blocks whose state may differ between two points, from the index alone: every block with
 * a version written in (fromSeq, toSeq] (writes, zeros and trims alike), merged into extents in
 * block order. Points are seq limits; their order does not matter. It is by version, not by
 * bytes: a block rewritten with the bytes it had is listed too, and no block that differs is
 * missed. Cost: the versions in the range (plus a sort of their blocks), not the volume's size,
 * and no block is read. Rollback stands on this too: it writes exactly these extents.
 * `blockCount` (the volume's) lets a diff of many versions over few blocks use a bitmap.
 */
export function indexDiff(index: VersionIndex, fromSeq: number, toSeq: number, blockCount?: number): BlockExtent[] {
  const lo = Math.min(fromSeq, toSeq);
  const hi = Math.max(fromSeq, toSeq);
  if (lo === hi) return [];
  let blocks = new Float64Array(1024);
  let n = 0;
  index.blocksInSeqRange(lo, hi, (block) => {
    if (n === blocks.length) {
      const grown = new Float64Array(n * 2);
      grown.set(blocks);
      blocks = grown;
    }
    blocks[n++] = block;
  });
  // Many versions over a small volume: marking a bitmap and scanning it beats sorting them, and
  // the scan is bounded by the versions (only taken when blocks <= 8 x versions).
  if (blockCount !== undefined && blockCount <= 8 * n) return extentsOfBitmap(blocks.subarray(0, n), blockCount);
  return extentsOf(blocks.subarray(0, n).sort());
}

function extentsOfBitmap(blocks: Float64Array, blockCount: number): BlockExtent[] {
  const seen = new Uint8Array(blockCount);
  for (let i = 0; i < blocks.length; i++) seen[blocks[i]] = 1;
  const out: BlockExtent[] = [];
  for (let b = seen.indexOf(1); b >= 0 && b < blockCount; ) {
    let end = b + 1;
    while (end < blockCount && seen[end]) end++;
    out.push({ firstBlock: b, blockCount: end - b });
    b = seen.indexOf(1, end);
  }
  return out;
}

/** Merges an ascending list of block numbers (repeats allowed) into extents. */
export function extentsOf(sortedBlocks: ArrayLike<number>): BlockExtent[] {
  const out: BlockExtent[] = [];
  let cur: BlockExtent | undefined;
  for (let i = 0; i < sortedBlocks.length; i++) {
    const b = sortedBlocks[i];
    if (cur && b < cur.firstBlock + cur.blockCount) continue;
    if (cur && b === cur.firstBlock + cur.blockCount) cur.blockCount++;
    else out.push((cur = { firstBlock: b, blockCount: 1 }));
  }
  return out;
}

export function extentBlocks(extents: readonly BlockExtent[]): number {
  return extents.reduce((n, e) => n + e.blockCount, 0);
}

/** The blocks in either list of extents, as extents in block order. */
export function unionExtents(a: readonly BlockExtent[], b: readonly BlockExtent[]): BlockExtent[] {
  const all = [...a, ...b].sort((x, y) => x.firstBlock - y.firstBlock);
  const out: BlockExtent[] = [];
  for (const e of all) {
    const last = out[out.length - 1];
    if (last && e.firstBlock <= last.firstBlock + last.blockCount) last.blockCount = Math.max(last.blockCount, e.firstBlock + e.blockCount - last.firstBlock);
    else out.push({ ...e });
  }
  return out;
}
