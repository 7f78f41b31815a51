import { DEFAULTS } from '../options';
import { Core } from './core';

/**
 * Checkpoints the index. The snapshot (log position, counters, events) and the memtable freeze
 * happen in one tick; the manifest is written only once the log up to that position is durable,
 * so a checkpoint never points at bytes a crash could still take away. Runs one at a time.
 */
export async function checkpoint(core: Omit<Core, 'checkpointer'>): Promise<void> {
  const covered = { segment: core.segments.current.id, offset: core.segments.current.end };
  const body = { covered, ...core.volumeLog.position() };
  const runs = core.index.freeze();
  await core.segments.durableThrough(covered);
  // Only the runs frozen with `covered`: one frozen while we waited may hold versions past it.
  await core.index.persist(body, runs);
}

/**
 * Checkpoints in the background, one at a time: a request while one runs schedules one more.
 * The write path asks and moves on; eviction and close wait for it.
 */
export class Checkpointer {
  private running?: Promise<void>;
  private again = false;
  /** The last background failure, rethrown to the next waiter. */
  private failure?: unknown;

  constructor(private readonly core: Omit<Core, 'checkpointer'>) {}

  /** Log sealed since the last request. */
  private sealedBytes = 0;

  /**
   * A segment was sealed. The memtable is frozen into a run at once (a small memtable stays in
   * the CPU's cache, and adds to it are several times cheaper); the runs are persisted once
   * checkpointIntervalBytes of log have built up, which is then the most a replay after a crash
   * has to read. Persisting at every seal cost the event loop file operations and merges that a
   * 128 KiB FUSE write waits behind. Eviction asks for its own checkpoint when it needs one.
   */
  noteSealed(bytes: number): void {
    this.sealedBytes += bytes;
    if (this.sealedBytes >= DEFAULTS.checkpointIntervalBytes) this.request();
    else this.core.index.freeze();
  }

  request(): void {
    this.sealedBytes = 0;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await checkpoint(this.core);
        } catch (err) {
          this.failure = err;
          this.core.log.error({ err: (err as Error).message }, 'background checkpoint failed');
          return;
        }
      } while (this.again);
    })().finally(() => (this.running = undefined));
  }

  /** Resolves when no checkpoint is running; rethrows a background failure once. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
    if (this.failure) {
      const err = this.failure;
      this.failure = undefined;
      throw err;
    }
  }
}
