import { AckModel } from './ack-model';
import { PipelinedNbdClient } from './nbd-client';
import { Rng } from './rng';

export interface AckLoadOptions {
  /** Requests kept in flight. */
  window: number;
  /** Blocks per write at most. */
  maxBlocks: number;
  /** Chances per request of a FUA write, a FLUSH, a WRITE_ZEROES/TRIM. The rest are plain writes. */
  fua?: number;
  flush?: number;
  zero?: number;
  /** Blocks written are in [0, span) (the whole volume by default): smaller means more overlap. */
  spanBlocks?: number;
  /** Checked before each request: true ends the load (after waiting for what is in flight). */
  stop: () => boolean;
}

export interface AckLoadResult {
  sent: number;
  acked: number;
  /** Replies with an NBD error. */
  errors: number;
  /** The connection went away (a killed daemon) while requests were in flight. */
  lost: boolean;
}

/**
 * One ordered writer: pipelined writes (plain, FUA, zeroes), flushes, every acknowledgment
 * entered in the model as its reply arrives. Ends when `stop` says so or the connection dies.
 */
export async function ackedWriteLoad(c: PipelinedNbdClient, model: AckModel, rng: Rng, o: AckLoadOptions): Promise<AckLoadResult> {
  const r: AckLoadResult = { sent: 0, acked: 0, errors: 0, lost: false };
  const inFlight = new Set<Promise<void>>();
  const span = o.spanBlocks ?? model.blockCount;
  const bs = model.blockSizeBytes;
  const track = (p: Promise<number>, onAck: () => void) => {
    const q = p.then(
      (error) => {
        if (error === 0) onAck();
        else r.errors++;
      },
      () => {
        r.lost = true;
      },
    ).finally(() => inFlight.delete(q));
    inFlight.add(q);
    r.sent++;
  };
  while (!r.lost && !o.stop()) {
    const pick = rng.next();
    if (pick < (o.flush ?? 0)) {
      track(c.flush(), () => r.acked++);
    } else {
      const count = 1 + rng.int(Math.min(o.maxBlocks, span));
      const first = rng.int(span - count + 1);
      const zero = pick < (o.flush ?? 0) + (o.zero ?? 0);
      const fua = !zero && rng.bool(o.fua ?? 0);
      const id = model.begin(first, count, zero);
      const sent = zero ? c.zero(first * bs, count * bs, rng.bool()) : c.write(first * bs, model.data(id, first, count), fua);
      track(sent, () => {
        r.acked++;
        model.ack(id, first, count);
      });
    }
    if (inFlight.size >= o.window) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return r;
}

/** Reads the whole live image through `c` and checks it against the model; returns the problems. */
export async function checkLiveImage(c: PipelinedNbdClient, model: AckModel, chunkBlocks = 256): Promise<string[]> {
  const problems: string[] = [];
  const bs = model.blockSizeBytes;
  for (let b = 0; b < model.blockCount; b += chunkBlocks) {
    const n = Math.min(chunkBlocks, model.blockCount - b);
    model.checkLive(await c.read(b * bs, n * bs), b, problems);
  }
  return problems;
}
