import assert from 'node:assert/strict';

/** An event as the model knows it: what `sync()` returned when it was acknowledged. */
export interface ModelEvent {
  id: number;
  seq: number;
  label: string;
}

/**
 * The plain reference model: a byte array for the live volume, a snapshot for every point we
 * want to check later, and the list of acknowledged events, kept here rather than read back from
 * the engine, so an engine that loses or invents an event is seen. Nothing clever, so it can be
 * trusted.
 */
export class VolumeModel {
  live: Buffer;
  /** seq → image after that seq. */
  readonly atSeq = new Map<number, Buffer>();
  /** Events whose sync() resolved, in order. */
  events: ModelEvent[] = [];
  constructor(readonly sizeBytes: number) {
    this.live = Buffer.alloc(sizeBytes);
  }
  write(offset: number, data: Buffer): void {
    data.copy(this.live, offset);
  }
  zero(offset: number, length: number): void {
    this.live.fill(0, offset, offset + length);
  }
  snapshot(seq: number): void {
    this.atSeq.set(seq, Buffer.from(this.live));
  }
  /** A sync() resolved with this event. */
  acknowledge(e: ModelEvent): void {
    this.events.push({ id: e.id, seq: e.seq, label: e.label });
  }

  /**
   * The engine's events must be exactly the acknowledged ones, in order, followed by at most
   * the events in `maybe` (syncs that were running when the power went: they may have made it).
   * Returns the engine's list, which the model then adopts.
   */
  checkEvents(engine: readonly ModelEvent[], maybe: ModelEvent[] = [], context = ''): ModelEvent[] {
    const got = engine.map((e) => ({ id: e.id, seq: e.seq, label: e.label }));
    assert.deepEqual(got.slice(0, this.events.length), this.events, `every acknowledged event, in order, as acknowledged ${context}`);
    const extra = got.slice(this.events.length);
    assert.ok(extra.length <= maybe.length, `the engine lists events nobody acknowledged: ${JSON.stringify(extra)} ${context}`);
    assert.deepEqual(extra, maybe.slice(0, extra.length), `only a sync that was still running may add an event ${context}`);
    return got;
  }
}
