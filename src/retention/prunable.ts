import { VersionIndex } from '../index/version-index';

export interface Prunable {
  /** Versions no kept point and no live block reads. */
  versions: number;
  /** Their block data (ZERO/TRIM versions hold none). */
  bytes: number;
}

/**
 * What a prune could drop, given the points that stay: `keptSeqs` (kept events and pins) and
 * every point from `continuousFromSeq` on (the continuous span, live included). A version of a
 * block is read by the points from its seq up to (not including) the block's next version's
 * seq; it is needed when a kept point falls in that interval or the interval reaches the
 * continuous span. One pass over the index plus a sort of its versions.
 */
export function prunableVersions(index: VersionIndex, keptSeqs: readonly number[], continuousFromSeq: number, blockSizeBytes: number): Prunable {
  const n = index.versionCount;
  const blocks = new Float64Array(n);
  const seqs = new Float64Array(n);
  const hasData = new Uint8Array(n);
  let k = 0;
  index.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (block, seq, _segment, offset) => {
    blocks[k] = block;
    seqs[k] = seq;
    hasData[k] = offset !== 0 ? 1 : 0;
    k++;
  });
  const order = new Uint32Array(k);
  for (let i = 0; i < k; i++) order[i] = i;
  order.sort((a, b) => blocks[a] - blocks[b] || seqs[a] - seqs[b]);
  const kept = Float64Array.from(keptSeqs).sort();
  const out: Prunable = { versions: 0, bytes: 0 };
  for (let j = 0; j < k; j++) {
    const i = order[j];
    const next = j + 1 < k && blocks[order[j + 1]] === blocks[i] ? seqs[order[j + 1]] : Infinity;
    if (next > continuousFromSeq) continue; // the continuous span (and live) reads it
    const from = seqs[i];
    const at = lowerBound(kept, from);
    if (at < kept.length && kept[at] < next) continue; // a kept point reads it
    out.versions++;
    if (hasData[i]) out.bytes += blockSizeBytes;
  }
  return out;
}

function lowerBound(a: Float64Array, x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
