import type { CatalogWalk } from '../archive/archive-catalog';
import type { RecordHeader } from '../format/record';
import { isVersionRecord } from './prune-plan';
import { VersionIndex } from '../index/version-index';
import { SegmentLiveness, isNeeded } from './prunable';

/** What the last prune walked (the catalog's `walked`). */
export type PruneBaseline = CatalogWalk;

/** One version-making record of a segment: WRITE, ZERO or TRIM (a zero version is indexed under its record's segment, offset 0). */
export interface WalkRecord {
  seq: number;
  firstBlock: number;
  blockCount: number;
}

/**
 * The spans (from, to] holding the next version of every version that died since `base`. A
 * version at s whose block's next version is at n is dead when n ≤ the span's start C and no kept
 * point lies in [s, n). If it was needed at `base`, either n > C₀ (so n ∈ (C₀, C]) or a point
 * f ∈ [s, n) kept then is not now (so n ∈ (f, min(next kept point after f, C)]). Ascending, merged.
 */
export function forgottenSpans(keptSeqs: readonly number[], continuousFromSeq: number, base: PruneBaseline): Array<[number, number]> {
  const kept = Float64Array.from(keptSeqs).sort();
  const still = new Set(keptSeqs);
  const c = continuousFromSeq;
  const spans: Array<[number, number]> = [];
  if (c > base.continuousFromSeq) spans.push([base.continuousFromSeq, c]);
  for (const f of base.keptSeqs) {
    if (f >= c || still.has(f)) continue;
    let lo = 0;
    let hi = kept.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (kept[mid] <= f) lo = mid + 1;
      else hi = mid;
    }
    spans.push([f, Math.min(lo < kept.length ? kept[lo] : Infinity, c)]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [a, b] of spans) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/**
 * The segments (those `wanted` accepts) holding a version that died since the baseline: for
 * every version in the forgotten spans, its block's previous version, found by a floor lookup
 * and judged by the kept points now and then. Costs the versions written in those spans, not the history.
 */
export function segmentsWithNewDead(index: VersionIndex, base: PruneBaseline, keptSeqs: readonly number[], continuousFromSeq: number, wanted: (segment: number) => boolean): Set<number> {
  const spans = forgottenSpans(keptSeqs, continuousFromSeq, base);
  const kept = Float64Array.from(keptSeqs).sort();
  const kept0 = Float64Array.from(base.keptSeqs).sort();
  const out = new Set<number>();
  for (const [from, to] of spans) {
    index.versionsInSeqRange(from, to, (block, seq) => {
      const prev = index.floor(block, seq - 1);
      if (!prev || out.has(prev.segment) || !wanted(prev.segment)) return;
      // Dead now, needed then (one dead then was acted on, or kept under the threshold, already).
      if (!isNeeded(kept, continuousFromSeq, prev.seq, seq) && isNeeded(kept0, base.continuousFromSeq, prev.seq, seq)) out.add(prev.segment);
    });
  }
  return out;
}

/**
 * One segment's liveness (as segmentLiveness gives it) from its own records: each version's
 * next version comes from an index lookup, so the cost is the segment's versions.
 */
export function recordLiveness(index: VersionIndex, records: Iterable<WalkRecord>, keptSeqs: readonly number[], continuousFromSeq: number): SegmentLiveness {
  const kept = Float64Array.from(keptSeqs).sort();
  const out: SegmentLiveness = { versions: 0, deadVersions: 0, neededSeqs: new Set() };
  for (const r of records) {
    for (let b = r.firstBlock; b < r.firstBlock + r.blockCount; b++) {
      out.versions++;
      if (isNeeded(kept, continuousFromSeq, r.seq, index.nextSeqAfter(b, r.seq))) out.neededSeqs.add(r.seq);
      else out.deadVersions++;
    }
  }
  return out;
}

/**
 * recordLiveness over an archived object's records (its parsed headers): every version record,
 * ZERO and TRIM as WRITE (a zero version is indexed under its record's segment, offset 0).
 */
export function objectLiveness(index: VersionIndex, headers: Iterable<RecordHeader>, keptSeqs: readonly number[], continuousFromSeq: number): SegmentLiveness {
  return recordLiveness(index, [...headers].filter((h) => isVersionRecord(h.type)), keptSeqs, continuousFromSeq);
}
