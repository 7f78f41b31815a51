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
  /**
   * A write as the engine logs it (src/volume/volume-writer.ts): the whole blocks it covers, the
   * edges filled in from the live image, in runs of all-zero blocks (a data-less ZERO record)
   * and of blocks with data (a WRITE record); each record takes one seq (docs/FORMAT.md). So a
   * byte that lands alone in a block that stays all zeros makes a write two records or three.
   * Applies the write run by run, snapshots the image after each from `firstSeq` on, and returns
   * how many seqs the write takes. The caller keeps writes within one record's block limit.
   */
  writeRecords(offset: number, data: Buffer, blockSizeBytes: number, firstSeq: number): number {
    const bs = blockSizeBytes;
    const after = Buffer.from(this.live);
    data.copy(after, offset);
    const zero = (b: number) => after.subarray(b * bs, (b + 1) * bs).every((x) => x === 0);
    const end = Math.ceil((offset + data.length) / bs);
    let records = 0;
    for (let b = Math.floor(offset / bs); b < end; ) {
      let e = b + 1;
      while (e < end && zero(e) === zero(b)) e++;
      after.copy(this.live, b * bs, b * bs, e * bs);
      this.snapshot(firstSeq + records++);
      b = e;
    }
    return records;
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
