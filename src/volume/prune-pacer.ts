import { performance } from 'node:perf_hooks';

/**
 * Foreground requests (reads, writes, flushes from the edges): how many came, and how many are
 * still waiting. The hot paths pay an increment (and a callback for those that wait); whoever wants
 * to know whether the volume is busy compares counts.
 */
export class ForegroundActivity {
  requests = 0;
  /** Requests that returned a promise not settled yet (a write waiting for turnover, a read for the archive). */
  inFlight = 0;

  /** Counts `p` in flight until it settles; returns `p` itself (its rejection is the caller's). */
  track<T>(p: Promise<T>): Promise<T> {
    this.inFlight++;
    const done = () => void this.inFlight--;
    p.then(done, done);
    return p;
  }
}

export interface PacerOptions {
  /**
   * While foreground requests come, the share of the time the background work may take: after
   * a step of d ms it waits d × (1 / share − 1) ms, or until the foreground is quiet (1: no pacing).
   */
  busyShare: number;
  /** The foreground counts as quiet after this long without a request. */
  quietMs: number;
}

/**
 * Paces a background job (prune) against foreground I/O: its work is cut into steps (one
 * archived object read, written or deleted), and before each one it yields to the volume's
 * reads and writes. Quiet volume: the steps run back to back. Busy: each step is followed by a
 * pause that keeps the job's share of the time at `busyShare`, cut short once the foreground goes
 * quiet. Why: a prune's reads, rewrites, fsyncs and unlinks share the disk, the event loop and the
 * threadpool with the edges', and unpaced they cut FUSE writes and past reads during it to a
 * third (issue 15). Progress is never stopped outright, only slowed.
 */
export class Pacer {
  private seen: number;
  private lastStepMs = 0;
  /** Time spent waiting for the foreground, for reports and tests. */
  waitedMs = 0;
  /** Steps that had to wait. */
  yielded = 0;

  constructor(private readonly activity: ForegroundActivity, private readonly o: PacerOptions) {
    this.seen = activity.requests;
  }

  /** Runs `fn` as one step: first yields to the foreground as above, then times it. */
  async step<T>(fn: () => Promise<T> | T): Promise<T> {
    await this.turn();
    const t = performance.now();
    try {
      return await fn();
    } finally {
      this.lastStepMs = performance.now() - t;
    }
  }

  private async turn(): Promise<void> {
    const share = this.o.busyShare;
    if (share >= 1) return;
    // Owed to the foreground for the last step; never less than one quiet period, so a busy
    // volume is always looked at once before the next step.
    const owedMs = Math.max(this.o.quietMs, share > 0 ? this.lastStepMs * (1 / share - 1) : Infinity);
    const start = performance.now();
    let waited = false;
    // Requests since the last look, or one still waiting: busy. Wait a quiet period at a time
    // until one passes with none, or the pause owed is over.
    while (this.activity.requests !== this.seen || this.activity.inFlight > 0) {
      this.seen = this.activity.requests;
      const left = owedMs - (performance.now() - start);
      if (left <= 0) break;
      waited = true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(this.o.quietMs, left)));
    }
    if (waited) {
      this.yielded++;
      this.waitedMs += performance.now() - start;
    }
  }
}
