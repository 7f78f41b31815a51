import type { Volume } from '../volume/volume';
import { RetentionPolicy, decide, describePolicy, isEmptyPolicy, policyToJson } from './policy';

export interface EventVerdict {
  id: number;
  seq: number;
  time: string;
  label: string;
  /** The rules keeping it; empty for an event that goes. */
  reasons: string[];
}

export interface ForgetReport {
  dryRun: boolean;
  policy: Record<string, string | number>;
  policyText: string;
  kept: EventVerdict[];
  forgotten: EventVerdict[];
  /** Before this seq only kept events and pins stay reachable; from it on every point does. */
  continuousFromSeq: number;
  /** What a prune would free once these are gone (versions no kept point reads); null when not counted. */
  prunableVersions: number | null;
  prunableBytes: number | null;
}

/**
 * Applies a policy: decides which events stay (and why), and unless `dryRun`, durably records
 * the rest as forgotten and moves the continuous span's start up to the policy's window (to the
 * end of the log without one). From then on those events and the thinned points between kept
 * ones answer POINT_FORGOTTEN. Nothing is deleted here: prune frees the space, later.
 */
export function forget(volume: Volume, policy: RetentionPolicy, o: { dryRun?: boolean; nowMs?: number; countPrunable?: boolean } = {}): ForgetReport {
  const r = volume.retention;
  const nowMs = o.nowMs ?? Date.now();
  // A sync's event is not a point until the sync made it durable (rule 28): a forget meanwhile
  // must not keep it in place of the durable event before it.
  const events = volume.events.filter((e) => volume.isDurableEvent(e));
  const pinReasons = new Map<number, string[]>();
  for (const p of r.pins) {
    for (const e of events) if (e.seq === p.seq) pinReasons.set(e.id, [...(pinReasons.get(e.id) ?? []), `${p.reason || p.holder}`]);
  }
  // The window's start: the state then must stay whole, so the span starts at the last seq
  // written at or before it. Without a window only kept points stay, and live.
  // With no policy at all nothing is thinned.
  const lastSeq = volume.lastSeq;
  const windowSeq = isEmptyPolicy(policy) ? 0 : policy.keepAllWithinMs !== undefined ? volume.seqAtOrBefore(nowMs - policy.keepAllWithinMs) : lastSeq;
  const continuousFromSeq = Math.max(r.continuousFromSeq, Math.min(windowSeq, lastSeq));
  const decisions = decide(events, policy, nowMs, pinReasons);
  const kept: EventVerdict[] = [];
  const gone: EventVerdict[] = [];
  decisions.forEach((d, i) => {
    const e = events[i];
    // Every event in the continuous span stays: its point does.
    if (!d.keep && e.seq >= continuousFromSeq) d.reasons.push('all-within');
    const v = { id: e.id, seq: e.seq, time: new Date(e.timeMs).toISOString(), label: e.label, reasons: d.reasons };
    (d.reasons.length ? kept : gone).push(v);
  });
  const keptSeqs = [...kept.map((e) => e.seq), ...r.keptPointSeqs()];
  // Counting walks and sorts the whole index (seconds at 10^7 versions, on the event loop): a
  // daemon's scheduled forget skips it.
  const prunable = o.countPrunable === false ? { versions: null, bytes: null } : volume.prunable(keptSeqs, continuousFromSeq);
  if (!o.dryRun) {
    volume.forgetEvents(gone.map((e) => e.id), continuousFromSeq); // durable before anything acts on it
  }
  return {
    dryRun: !!o.dryRun,
    policy: policyToJson(policy),
    policyText: describePolicy(policy),
    kept,
    forgotten: gone,
    continuousFromSeq,
    prunableVersions: prunable.versions,
    prunableBytes: prunable.bytes,
  };
}
