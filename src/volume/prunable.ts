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
export function prunableVersions(index: VersionIndex, keptSeqs: readonly number[], continuousFromSeq: number, blockSizeBytes: number, o: { keyedSort?: boolean } = {}): Prunable {
  const n = index.versionCount;
  const blocks = new Float64Array(n);
  const seqs = new Float64Array(n);
  const hasData = new Uint8Array(n);
  let k = 0;
  let maxBlock = 0;
  let maxSeq = 0;
  index.versionsInSeqRange(-1, Number.MAX_SAFE_INTEGER, (block, seq, _segment, offset) => {
    blocks[k] = block;
    seqs[k] = seq;
    hasData[k] = offset !== 0 ? 1 : 0;
    if (block > maxBlock) maxBlock = block;
    if (seq > maxSeq) maxSeq = seq;
    k++;
  });
  const kept = Float64Array.from(keptSeqs).sort();
  const out: Prunable = { versions: 0, bytes: 0 };
  const visit = (block: number, seq: number, data: boolean, nextBlock: number, nextSeq: number): void => {
    if (isNeeded(kept, continuousFromSeq, seq, nextBlock === block ? nextSeq : Infinity)) return;
    out.versions++;
    if (data) out.bytes += blockSizeBytes;
  };
  const span = maxSeq + 1;
  if (o.keyedSort !== false && (maxBlock + 1) * span * 2 < Number.MAX_SAFE_INTEGER) {
    // One number per version, (block, seq, data) in order: a typed-array sort without a
    // comparator is several times faster than sorting indices with one.
    const keys = new Float64Array(k);
    for (let i = 0; i < k; i++) keys[i] = (blocks[i] * span + seqs[i]) * 2 + hasData[i];
    keys.sort();
    const split = (key: number): [number, number, boolean] => {
      const bs = Math.floor(key / 2);
      return [Math.floor(bs / span), bs % span, key % 2 === 1];
    };
    for (let j = 0; j < k; j++) {
      const [b, s, d] = split(keys[j]);
      const [nb, ns] = j + 1 < k ? split(keys[j + 1]) : [-1, 0];
      visit(b, s, d, nb, ns);
    }
    return out;
  }
  const order = new Uint32Array(k);
  for (let i = 0; i < k; i++) order[i] = i;
  order.sort((a, b) => blocks[a] - blocks[b] || seqs[a] - seqs[b]);
  for (let j = 0; j < k; j++) {
    const i = order[j];
    const nx = j + 1 < k ? order[j + 1] : -1;
    visit(blocks[i], seqs[i], hasData[i] === 1, nx >= 0 ? blocks[nx] : -1, nx >= 0 ? seqs[nx] : 0);
  }
  return out;
}

/**
 * The one liveness rule: the version at `seq`, whose block's next version is at `next`
 * (Infinity: none), is read by the continuous span (live included) or by a kept point in
 * [seq, next). `kept` sorted ascending.
 */
export function isNeeded(kept: Float64Array, continuousFromSeq: number, seq: number, next: number): boolean {
  if (next > continuousFromSeq) return true;
  const at = lowerBound(kept, seq);
  return at < kept.length && kept[at] < next;
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

/** Per archived segment: which of its versions' records some kept point (or live) still reads. */
export interface SegmentLiveness {
  versions: number;
  deadVersions: number;
  /** Seqs of records holding at least one needed version. */
  neededSeqs: Set<number>;
}

/**
 * prunableVersions' rule, per segment: for every version whose segment `wanted` accepts, is it
 * needed (same definition), grouped by segment. Also counts versions of segments the catalog
 * says were compacted away (`gone`): an index a crash left unfiltered.
 */
export function segmentLiveness(index: VersionIndex, keptSeqs: readonly number[], continuousFromSeq: number, wanted: (segment: number) => boolean): Map<number, SegmentLiveness> {
  const kept = Float64Array.from(keptSeqs).sort();
  const out = new Map<number, SegmentLiveness>();
  // One version behind: a version's fate needs its block's next version's seq.
  let pb = -1;
  let ps = 0;
  let pg = 0;
  const settle = (next: number) => {
    if (pb < 0 || !wanted(pg)) return;
    const needed = isNeeded(kept, continuousFromSeq, ps, next);
    let s = out.get(pg);
    if (!s) out.set(pg, (s = { versions: 0, deadVersions: 0, neededSeqs: new Set() }));
    s.versions++;
    if (needed) s.neededSeqs.add(ps);
    else s.deadVersions++;
  };
  index.versionsInBlockOrder((block, seq, segment) => {
    settle(block === pb ? seq : Infinity);
    pb = block;
    ps = seq;
    pg = segment;
  });
  settle(Infinity);
  return out;
}
