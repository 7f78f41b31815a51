import { RecordType } from '../format/constants';

/** One record of an archived object, as the plan needs it. */
export interface PlanRecord {
  seq: number;
  type: number;
  /** Header and payload. */
  bytes: number;
}

export interface PlanInput {
  id: number;
  /** Bytes of the object as it is now. */
  objectBytes: number;
  records: readonly PlanRecord[];
  /** Seqs of version records some kept point (or live) reads. */
  neededSeqs: ReadonlySet<number>;
}

export type PruneAction = 'delete' | 'rewrite' | 'keep';

export interface PlanEntry {
  id: number;
  action: PruneAction;
  objectBytes: number;
  /** Record bytes that stay (a rewrite writes these, plus its header, table and trailer). */
  neededBytes: number;
  /** Record bytes no kept point reads. */
  deadBytes: number;
  /** Seqs of the records that stay, ascending. */
  keptSeqs: number[];
  /** Why, in words (dry-run output). */
  why: string;
  /** A rewrite past --max-rewrite-bytes, left for a later prune. */
  deferred?: boolean;
}

/** Records that make block versions; every other record (events, resync windows) always stays: it is small and recovery rebuilds the event list from it. */
export function isVersionRecord(type: number): boolean {
  return type === RecordType.WRITE || type === RecordType.ZERO || type === RecordType.TRIM;
}

/**
 * What to do with one archived object (pure): a record is needed when it is not a version
 * record or some kept point reads one of its versions. Nothing needed: delete. A dead share of
 * the record bytes at or above `threshold`: rewrite with the needed records only. Else keep.
 */
export function planSegment(input: PlanInput, threshold: number): PlanEntry {
  let neededBytes = 0;
  let deadBytes = 0;
  const keptSeqs: number[] = [];
  for (const r of input.records) {
    if (!isVersionRecord(r.type) || input.neededSeqs.has(r.seq)) {
      neededBytes += r.bytes;
      keptSeqs.push(r.seq);
    } else deadBytes += r.bytes;
  }
  keptSeqs.sort((a, b) => a - b);
  const base = { id: input.id, objectBytes: input.objectBytes, neededBytes, deadBytes, keptSeqs };
  if (!keptSeqs.length) return { ...base, action: 'delete', why: 'no kept point reads any of it' };
  // Of the whole object: a linked one also holds copy-forward and SYNC records, which no reader
  // of the archive needs (their data is archived at its origin).
  const share = 1 - neededBytes / Math.max(1, input.objectBytes);
  if (share >= threshold) return { ...base, action: 'rewrite', why: `${Math.round(share * 100)}% dead (threshold ${Math.round(threshold * 100)}%)` };
  return { ...base, action: 'keep', why: deadBytes ? `${Math.round(share * 100)}% dead, under the threshold ${Math.round(threshold * 100)}%` : 'every record is needed' };
}

/**
 * The plan over every candidate, oldest first: rewrites beyond `maxRewriteBytes` (the bytes a
 * prune writes) wait for a later prune; deletes write nothing and always go.
 */
export function planPrune(inputs: readonly PlanInput[], o: { threshold: number; maxRewriteBytes: number }): PlanEntry[] {
  let budget = o.maxRewriteBytes;
  return [...inputs].sort((a, b) => a.id - b.id).map((input) => {
    const e = planSegment(input, o.threshold);
    if (e.action !== 'rewrite') return e;
    if (e.neededBytes > budget) return { ...e, action: 'keep', deferred: true, why: `${e.why}; past --max-rewrite-bytes, left for a later prune` };
    budget -= e.neededBytes;
    return e;
  });
}

/** Bytes a plan frees in the archive (a rewrite's new object is its needed bytes plus a little). */
export function freedBytes(plan: readonly PlanEntry[]): number {
  return plan.reduce((n, e) => n + (e.action === 'delete' ? e.objectBytes : e.action === 'rewrite' ? Math.max(0, e.objectBytes - e.neededBytes) : 0), 0);
}
