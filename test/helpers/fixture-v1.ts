import { Rng } from './rng';

/**
 * The deterministic history stored in test/fixtures/v1: 64 KiB volume, 512-byte blocks, 64 KiB
 * segments, 60 writes between events, 8 events. Regenerate only for a new format version.
 */
export const FIXTURE_V1 = { sizeBytes: 64 * 1024, blockSizeBytes: 512, segmentSizeBytes: 64 * 1024, events: 8, writesPerEvent: 60, seed: 20261127 };

export function* fixtureWrites(): Generator<{ offset: number; data: Buffer } | { event: string }> {
  const rng = new Rng(FIXTURE_V1.seed);
  for (let e = 1; e <= FIXTURE_V1.events; e++) {
    for (let i = 0; i < FIXTURE_V1.writesPerEvent; i++) {
      const offset = rng.int(FIXTURE_V1.sizeBytes - 1);
      const len = Math.min(FIXTURE_V1.sizeBytes - offset, 1 + rng.int(3000));
      yield { offset, data: rng.bool(0.1) ? Buffer.alloc(len) : rng.bytes(len) };
    }
    yield { event: `fixture-${e}` };
  }
}

/** Expected image after each event. */
export function fixtureImages(): Map<string, Buffer> {
  const live = Buffer.alloc(FIXTURE_V1.sizeBytes);
  const out = new Map<string, Buffer>();
  for (const step of fixtureWrites()) {
    if ('event' in step) out.set(step.event, Buffer.from(live));
    else step.data.copy(live, step.offset);
  }
  return out;
}
