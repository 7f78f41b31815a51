import { ChronoError } from '../errors';

/**
 * A retention policy in restic's vocabulary, applied to sync events. Counts are how many
 * buckets (hours, days, ISO weeks, months, years; UTC) keep their newest event; durations are
 * milliseconds. Every field is optional; a policy with none keeps everything.
 */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Every event at most this long before the newest event (restic's --keep-within). */
  keepWithinMs?: number;
  /** Every write at most this long before now stays reachable, every event in it too. */
  keepAllWithinMs?: number;
}

export type KeepRule = 'last' | 'hourly' | 'daily' | 'weekly' | 'monthly' | 'yearly' | 'within' | 'all-within' | 'pin';

/** The count rules in the order restic reports them; the bucket of a time for each. */
export const COUNT_RULES: ReadonlyArray<{ rule: KeepRule; field: keyof RetentionPolicy; bucket: (timeMs: number, index: number) => number }> = [
  { rule: 'last', field: 'keepLast', bucket: (_t, i) => i },
  { rule: 'hourly', field: 'keepHourly', bucket: (t) => Math.floor(t / 3_600_000) },
  { rule: 'daily', field: 'keepDaily', bucket: (t) => Math.floor(t / 86_400_000) },
  { rule: 'weekly', field: 'keepWeekly', bucket: isoWeek },
  { rule: 'monthly', field: 'keepMonthly', bucket: (t) => { const d = new Date(t); return d.getUTCFullYear() * 12 + d.getUTCMonth(); } },
  { rule: 'yearly', field: 'keepYearly', bucket: (t) => new Date(t).getUTCFullYear() },
];

export interface Candidate {
  id: number;
  timeMs: number;
}

export interface Decision {
  id: number;
  keep: boolean;
  /** Every rule that keeps it (empty: it goes). A pin reads `pin: <reason>`. */
  reasons: string[];
}

/** The ISO-8601 week (year × 100 + week) of a UTC time: weeks start on Monday. */
function isoWeek(timeMs: number): number {
  const d = new Date(timeMs);
  const day = (d.getUTCDay() + 6) % 7; // Monday = 0
  // The Thursday of this week decides the ISO year.
  const thursday = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - day + 3);
  const year = new Date(thursday).getUTCFullYear();
  const week = 1 + Math.floor((thursday - Date.UTC(year, 0, 1)) / (7 * 86_400_000));
  return year * 100 + week;
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return Object.values(p).every((v) => v === undefined);
}

/**
 * Which events stay and why. Restic's algorithm: newest first, each count rule keeps an event
 * whose bucket differs from the last bucket that rule kept, until its count is spent.
 * `events` in log order (time never decreases along it); `pins` maps an event id to its pins'
 * reasons. Decisions come back in the events' order.
 */
export function decide(events: readonly Candidate[], policy: RetentionPolicy, nowMs: number, pins: ReadonlyMap<number, string[]> = new Map()): Decision[] {
  const out: Decision[] = events.map((e) => ({ id: e.id, keep: false, reasons: [] }));
  const newestMs = events.length ? events[events.length - 1].timeMs : 0;
  const left = COUNT_RULES.map((r) => (policy[r.field] as number | undefined) ?? 0);
  const last: Array<number | undefined> = COUNT_RULES.map(() => undefined);
  for (let i = events.length - 1; i >= 0; i--) {
    const e = events[i];
    const d = out[i];
    for (const why of pins.get(e.id) ?? []) d.reasons.push(`pin: ${why}`);
    if (policy.keepWithinMs !== undefined && e.timeMs >= newestMs - policy.keepWithinMs) d.reasons.push('within');
    if (policy.keepAllWithinMs !== undefined && e.timeMs >= nowMs - policy.keepAllWithinMs) d.reasons.push('all-within');
    COUNT_RULES.forEach((r, k) => {
      if (left[k] <= 0) return;
      const b = r.bucket(e.timeMs, i);
      if (b === last[k]) return;
      last[k] = b;
      left[k]--;
      d.reasons.push(r.rule);
    });
    d.keep = d.reasons.length > 0 || isEmptyPolicy(policy);
    if (isEmptyPolicy(policy) && d.reasons.length === 0) d.reasons.push('no policy');
  }
  return out;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 };

/**
 * "90d", "1y6w", "36h", "15m" (minutes; restic's month has no fixed length, so there is none
 * here), "0". Units: ms s m h d w y, combined largest first.
 */
export function parseRetentionDuration(text: string): number {
  const t = text.trim();
  if (t === '0') return 0;
  const re = /(\d+)(ms|s|m|h|d|w|y)/gy;
  let total = 0;
  let at = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t))) {
    total += Number(m[1]) * UNIT_MS[m[2]];
    at = re.lastIndex;
  }
  if (at === 0 || at !== t.length || !Number.isSafeInteger(total)) throw new ChronoError('BAD_USAGE', `not a duration: ${text} (try 36h, 90d, 1y6w; units ms s m h d w y)`);
  return total;
}

/** The shortest spelling parseRetentionDuration reads back to the same value. */
export function formatRetentionDuration(ms: number): string {
  if (ms === 0) return '0';
  let left = ms;
  let s = '';
  for (const u of ['y', 'w', 'd', 'h', 'm', 's', 'ms']) {
    const n = Math.floor(left / UNIT_MS[u]);
    if (n > 0) {
      s += `${n}${u}`;
      left -= n * UNIT_MS[u];
    }
  }
  return s;
}

/** The policy as config.json stores it and `--json` prints it: durations spelled out. */
export function policyToJson(p: RetentionPolicy): Record<string, string | number> {
  const o: Record<string, string | number> = {};
  for (const r of COUNT_RULES) if (p[r.field] !== undefined) o[r.field] = p[r.field] as number;
  if (p.keepWithinMs !== undefined) o.keepWithin = formatRetentionDuration(p.keepWithinMs);
  if (p.keepAllWithinMs !== undefined) o.keepAllWithin = formatRetentionDuration(p.keepAllWithinMs);
  return o;
}

export function policyFromJson(o: unknown): RetentionPolicy {
  if (o === undefined || o === null) return {};
  if (typeof o !== 'object') throw new ChronoError('BAD_ARGUMENT', 'retention policy must be an object');
  const j = o as Record<string, unknown>;
  const p: RetentionPolicy = {};
  for (const r of COUNT_RULES) {
    const v = j[r.field];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new ChronoError('BAD_ARGUMENT', `retention ${r.field} must be a whole number, got ${JSON.stringify(v)}`);
    (p as Record<string, number>)[r.field] = v as number;
  }
  if (j.keepWithin !== undefined) p.keepWithinMs = parseRetentionDuration(String(j.keepWithin));
  if (j.keepAllWithin !== undefined) p.keepAllWithinMs = parseRetentionDuration(String(j.keepAllWithin));
  return p;
}

/** One line a person reads: "keep last 3, daily 7, all within 1d". */
export function describePolicy(p: RetentionPolicy): string {
  const parts: string[] = [];
  for (const r of COUNT_RULES) if (p[r.field] !== undefined) parts.push(`${r.rule} ${p[r.field]}`);
  if (p.keepWithinMs !== undefined) parts.push(`within ${formatRetentionDuration(p.keepWithinMs)}`);
  if (p.keepAllWithinMs !== undefined) parts.push(`all within ${formatRetentionDuration(p.keepAllWithinMs)}`);
  return parts.length ? `keep ${parts.join(', ')}` : 'keep everything (no policy)';
}
