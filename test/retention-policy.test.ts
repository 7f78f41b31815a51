import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COUNT_RULES, Candidate, RetentionPolicy, decide, formatRetentionDuration, parseRetentionDuration, policyFromJson, policyToJson } from '../src/retention/policy';
import { Rng } from './helpers/rng';
import { seedsFor } from './helpers/seeds';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * The plain model: each count rule, on its own, groups the events by bucket, takes the newest
 * event of each group, and keeps the newest N groups' ones. No state carried between events.
 */
function model(events: Candidate[], p: RetentionPolicy, nowMs: number, pins: Map<number, string[]>): Map<number, Set<string>> {
  const kept = new Map<number, Set<string>>(events.map((e) => [e.id, new Set<string>()]));
  for (const [id, why] of pins) for (const w of why) kept.get(id)?.add(`pin: ${w}`);
  const newest = events.length ? Math.max(...events.map((e) => e.timeMs)) : 0;
  for (const e of events) {
    if (p.keepWithinMs !== undefined && e.timeMs >= newest - p.keepWithinMs) kept.get(e.id)!.add('within');
    if (p.keepAllWithinMs !== undefined && e.timeMs >= nowMs - p.keepAllWithinMs) kept.get(e.id)!.add('all-within');
  }
  for (const r of COUNT_RULES) {
    const n = (p[r.field] as number | undefined) ?? 0;
    const newestOfBucket = new Map<number, number>(); // bucket → index of its newest event
    events.forEach((e, i) => newestOfBucket.set(r.bucket(e.timeMs, i), i));
    const chosen = [...newestOfBucket.values()].sort((a, b) => b - a).slice(0, n);
    for (const i of chosen) kept.get(events[i].id)!.add(r.rule);
  }
  const empty = Object.values(p).every((v) => v === undefined);
  if (empty) for (const s of kept.values()) if (s.size === 0) s.add('no policy');
  return kept;
}

function randomEvents(rng: Rng, nowMs: number): Candidate[] {
  const n = rng.int(120);
  // Gaps from a millisecond to months, so every bucket size sees repeats and holes.
  const gaps = [1, 1000, 10 * 60_000, HOUR, 5 * HOUR, DAY, 3 * DAY, 9 * DAY, 40 * DAY, 200 * DAY];
  const times: number[] = [];
  let t = nowMs - rng.int(30 * DAY);
  for (let i = 0; i < n; i++) {
    times.push(t);
    t -= rng.bool(0.15) ? 0 : 1 + rng.int(gaps[rng.int(gaps.length)]);
  }
  times.reverse();
  return times.map((timeMs, i) => ({ id: i + 1, timeMs }));
}

function randomPolicy(rng: Rng): RetentionPolicy {
  const p: RetentionPolicy = {};
  for (const r of COUNT_RULES) if (rng.bool(0.4)) (p as Record<string, number>)[r.field] = rng.int(8);
  if (rng.bool(0.3)) p.keepWithinMs = rng.int(20 * DAY);
  if (rng.bool(0.3)) p.keepAllWithinMs = rng.int(10 * DAY);
  return p;
}

test('retention policy: decide() keeps exactly what the plain model keeps, for the same reasons (seeded)', () => {
  for (const { seed, source } of seedsFor([1, 2, 3, 42, 2026])) {
    console.log(`seed ${seed} (${source}); replay with CHRONOVOL_SEED=${seed}`);
    const rng = new Rng(seed);
    for (let round = 0; round < 300; round++) {
      const nowMs = Date.UTC(2026, 0, 1) + rng.int(400 * DAY);
      const events = randomEvents(rng, nowMs);
      const policy = randomPolicy(rng);
      const pins = new Map<number, string[]>();
      for (const e of events) if (rng.bool(0.05)) pins.set(e.id, [`reason ${e.id}`]);
      const got = decide(events, policy, nowMs, pins);
      const want = model(events, policy, nowMs, pins);
      const ctx = `seed ${seed} round ${round} policy ${JSON.stringify(policy)}`;
      assert.deepEqual(got.map((d) => d.id), events.map((e) => e.id), ctx);
      for (const d of got) {
        const w = want.get(d.id)!;
        assert.deepEqual(new Set(d.reasons), w, `${ctx}: event ${d.id}`);
        assert.equal(d.keep, w.size > 0, `${ctx}: event ${d.id}`);
        if (pins.has(d.id)) assert.ok(d.keep, `${ctx}: a pinned event is always kept`);
      }
      for (const r of COUNT_RULES) {
        const n = (policy[r.field] as number | undefined) ?? 0;
        assert.ok(got.filter((d) => d.reasons.includes(r.rule)).length <= n, `${ctx}: rule ${r.rule} keeps at most ${n}`);
      }
    }
  }
});

test('retention policy: buckets are UTC hours, days, ISO weeks, months and years', () => {
  const t = (iso: string) => Date.parse(iso);
  const events = ['2025-12-28T10:00:00Z', '2025-12-29T09:00:00Z', '2025-12-31T23:59:59Z', '2026-01-01T00:00:00Z', '2026-01-04T12:00:00Z', '2026-01-05T00:00:00Z']
    .map((s, i) => ({ id: i + 1, timeMs: t(s) }));
  const kept = (p: RetentionPolicy) => decide(events, p, t('2026-01-06T00:00:00Z')).filter((d) => d.keep).map((d) => d.id);
  // ISO weeks: Mon 29 Dec 2025 – Sun 4 Jan 2026 is 2026-W01; 28 Dec is 2025-W52; 5 Jan is W02.
  assert.deepEqual(kept({ keepWeekly: 10 }), [1, 5, 6]);
  assert.deepEqual(kept({ keepYearly: 10 }), [3, 6]);
  assert.deepEqual(kept({ keepMonthly: 1 }), [6]);
  assert.deepEqual(kept({ keepDaily: 3 }), [4, 5, 6]);
  assert.deepEqual(kept({ keepLast: 2 }), [5, 6]);
  assert.deepEqual(kept({ keepWithinMs: DAY }), [5, 6]);
  assert.deepEqual(kept({ keepWithinMs: 12 * HOUR }), [5, 6], 'the window includes its edge');
  assert.deepEqual(kept({ keepAllWithinMs: 2 * DAY }), [5, 6]);
  assert.deepEqual(kept({ keepAllWithinMs: DAY }), [6]);
  assert.deepEqual(kept({}), [1, 2, 3, 4, 5, 6], 'no policy forgets nothing');
  assert.deepEqual(kept({ keepLast: 0 }), [], 'an explicit zero is a policy: it keeps nothing by itself');
});

test('retention durations: parse, print, and round-trip through the stored policy', () => {
  assert.equal(parseRetentionDuration('36h'), 36 * HOUR);
  assert.equal(parseRetentionDuration('1y6w'), 365 * DAY + 42 * DAY);
  assert.equal(parseRetentionDuration('15m'), 15 * 60_000);
  assert.equal(parseRetentionDuration('0'), 0);
  for (const bad of ['', '5', 'h', '3x', '1h 2m', '-1d']) assert.throws(() => parseRetentionDuration(bad), /BAD_USAGE|not a duration/, bad);
  const rng = new Rng(7);
  for (let i = 0; i < 200; i++) {
    const ms = rng.int(2 ** 40);
    assert.equal(parseRetentionDuration(formatRetentionDuration(ms)), ms);
  }
  const p: RetentionPolicy = { keepLast: 3, keepDaily: 7, keepWithinMs: 2 * DAY, keepAllWithinMs: 90 * 60_000 };
  assert.deepEqual(policyToJson(p), { keepLast: 3, keepDaily: 7, keepWithin: '2d', keepAllWithin: '1h30m' });
  assert.deepEqual(policyFromJson(policyToJson(p)), p);
  assert.throws(() => policyFromJson({ keepLast: -1 }), /whole number/);
});
