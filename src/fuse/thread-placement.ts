import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { ChronoError } from '../errors';
import { nativeAddon, nativeEnabled } from '../util/native-addon';

/**
 * Where fuse-native's threads run during write streams: one CPU (a number, or `auto`: the
 * daemon's own at mount), or anywhere (`off`).
 */
export type FuseCpu = 'auto' | 'off' | number;

export function parseFuseCpu(text: string): FuseCpu {
  if (text === 'auto' || text === 'off') return text;
  if (/^\d+$/.test(text)) return Number(text);
  throw new Error(`not a CPU: ${text} (a CPU number, auto or off)`);
}

/** Inherited by every thread the named ones create: how libfuse's later workers are found. */
const THREAD_NAME = 'chronovol-fuse';
const TASKS = '/proc/self/task';

/**
 * fuse-native's threads (the libfuse loop and its workers), which this process did not create
 * and cannot name in code, so they are marked: mounted while the event-loop thread is pinned to
 * one CPU, they inherit that mask; right after, every thread with exactly that mask is given a
 * name, which threads they create later inherit in turn.
 *
 * Why place them at all: every FUSE request goes from a libfuse thread to the event loop and
 * back, two wakeups, and the kernel sends a file's writes one 128 KiB request at a time, waiting
 * for each. On these two-vCPU machines, waking a thread parked on the other (idle) vCPU showed as
 * about 10 µs of the waker's time per wakeup. During a write stream the FUSE threads and the event
 * loop share one CPU and the handoffs stay there: 695 MB/s against 613 left to the scheduler,
 * with the bare sink at 820 (medians of 7 back-to-back rounds of 512 MiB, dd bs=1M conv=fsync).
 * The event loop's CPU time per request fell from 68 to 46 µs. But a read scan has several
 * requests in flight, and their replies' copies then queue on that one CPU: about 10% slower.
 * So they are spread again while reads come, and when the mount is idle (PlacementPolicy).
 */
export class FuseThreads {
  pinned = true; // as mounted

  /** `found`: the threads marked at mount, by id (also those whose renaming failed). */
  private constructor(readonly cpu: number, private readonly anywhere: number[], private readonly log: Logger, private readonly found: Set<number>) {}

  /** Runs `mount` so that the threads it creates are marked; undefined if they could not be. */
  static async mount(cpu: FuseCpu, mount: () => Promise<void>, log: Logger): Promise<FuseThreads | undefined> {
    const { threadAffinity, setThreadAffinity, currentCpu } = nativeAddon;
    const own = threadAffinity?.();
    if (cpu === 'off' || !nativeEnabled || !own || !setThreadAffinity || !currentCpu || own.length < 2) {
      await mount();
      return undefined;
    }
    const target = cpu === 'auto' ? currentCpu() : cpu;
    if (!own.includes(target)) throw new ChronoError('BAD_ARGUMENT', `CPU ${target} is not one this process may use (${own.join(',')})`);
    // The libuv threadpool starts on first use: make sure it has, or its threads would be
    // marked too (disk writes and read-ahead should run anywhere).
    await fs.promises.stat('/');
    if (setThreadAffinity([target]) !== 0) {
      await mount();
      return undefined;
    }
    try {
      await mount();
    } finally {
      setThreadAffinity(own);
    }
    const found = tasks().filter((tid) => {
      try {
        const mask = threadAffinity!(tid);
        return mask.length === 1 && mask[0] === target;
      } catch {
        return false; // the thread has exited
      }
    });
    const named = found.filter(rename);
    const t = new FuseThreads(target, own, log, new Set(found));
    t.spread(); // until a write stream comes; also frees any that could not be named
    return named.length ? t : undefined;
  }

  /**
   * The FUSE threads and the event loop on this.cpu only; the process's other threads (the
   * threadpool that writes segments, V8's helpers) on the other CPUs. Left anywhere, a threadpool
   * thread woken for a segment write often ran on the event loop's CPU and preempted it: handing
   * off one 2 MiB direct write cost the event loop 30-45 µs, against 16-19 µs with the threadpool
   * kept off its CPU, and FUSE writes ran 1.06-1.26x as fast (eight alternating rounds).
   */
  pin(): void {
    this.place([this.cpu], this.anywhere.filter((c) => c !== this.cpu), true);
  }

  /** Every thread anywhere this process may run. */
  spread(): void {
    this.place(this.anywhere, this.anywhere, false);
  }

  private place(cpus: number[], others: number[], pinned: boolean): void {
    for (const tid of tasks()) {
      if (tid === process.pid) continue;
      const fuse = this.found.has(tid) || nameOf(tid) === THREAD_NAME;
      nativeAddon.setThreadAffinity!(fuse ? cpus : others, tid); // -ESRCH if it has just exited
    }
    // The event loop too: it is what the FUSE threads hand each request to.
    nativeAddon.setThreadAffinity!(cpus, 0);
    this.pinned = pinned;
    this.log.debug({ cpus, others }, 'FUSE threads placed');
  }
}

/**
 * Pins the FUSE threads during write streams and spreads them for reads, deciding once per 64
 * requests: a window of writes only pins, one with 8 reads or more spreads. A second without
 * FUSE requests spreads them too (`tick`), so an idle mount never keeps the event loop on one
 * CPU for whatever else it serves (NBD, the control socket).
 */
export class PlacementPolicy {
  private requests = 0;
  private reads = 0;
  private seen = 0;

  constructor(private readonly threads: FuseThreads) {}

  /** Called about once a second. */
  tick(): void {
    if (this.seen === 0 && this.threads.pinned) this.threads.spread();
    this.seen = 0;
  }

  onRequest(isRead: boolean): void {
    this.seen++;
    if (isRead) this.reads++;
    if (++this.requests < 64) return;
    if (this.reads === 0 && !this.threads.pinned) this.threads.pin();
    else if (this.reads >= 8 && this.threads.pinned) this.threads.spread();
    this.requests = 0;
    this.reads = 0;
  }
}

function tasks(): number[] {
  try {
    return fs.readdirSync(TASKS).map(Number);
  } catch {
    return [];
  }
}

function nameOf(tid: number): string {
  try {
    return fs.readFileSync(`${TASKS}/${tid}/comm`, 'utf8').trim();
  } catch {
    return ''; // the thread has exited
  }
}

function rename(tid: number): boolean {
  try {
    fs.writeFileSync(`${TASKS}/${tid}/comm`, THREAD_NAME);
    return true;
  } catch {
    return false;
  }
}
