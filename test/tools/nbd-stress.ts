import * as fs from 'node:fs';
import * as path from 'node:path';
import { controlCall } from '../../src/control/control-client';
import { AckModel } from '../helpers/ack-model';
import { ServeDaemon } from '../helpers/daemon';
import { PipelinedNbdClient, openExport } from '../helpers/nbd-client';
import { Rng } from '../helpers/rng';
import { NBD } from '../../src/nbd/nbd-protocol';

export interface StressOptions {
  /** An initialized volume directory; `serve` is started on it here and stopped at the end. */
  dir: string;
  seconds: number;
  seed: number;
  /** NBD clients writing `live` at once (default 4). */
  clients?: number;
  /** The watchdog: any request (NBD, control, a new connection) waiting longer fails the run. */
  stallMs?: number;
  log?: (line: string) => void;
  /** After the watchdog fires, keep connections this long to log late answers (slow or stuck?). */
  lingerMs?: number;
  /**
   * Also writes of 2-8 MiB (a 1 MiB-segment volume turns over several times inside one), and
   * clients that go away in the middle of a write's payload (`scripts/stress --huge`).
   */
  huge?: boolean;
}

export interface StressResult {
  seed: number;
  requests: number;
  writes: number;
  reads: number;
  blocksChecked: number;
  flushes: number;
  syncs: number;
  controlCalls: number;
  reconnects: number;
  probes: number;
  maxWaitMs: number;
}

interface Pending {
  what: string;
  startMs: number;
}

/**
 * Several NBD clients write `live` at once, overlapping, pipelined, with reads (each block read
 * must be zeros or exactly what some write sent to it), FUA writes, flushes, zeroes and trims,
 * unaligned writes (read-modify-write) in a scratch area, abrupt disconnects with requests in
 * flight; meanwhile sync events, `events` and `status` over the control socket and fresh NBD
 * connections. A watchdog fails the run when any of these waits longer than `stallMs`
 * (issue 10, defect 7: serve once spun for ten minutes answering nothing).
 */
export async function runStress(o: StressOptions): Promise<StressResult> {
  const rng = new Rng(o.seed);
  const log = o.log ?? (() => undefined);
  const stallMs = o.stallMs ?? 10_000;
  const r: StressResult = { seed: o.seed, requests: 0, writes: 0, reads: 0, blocksChecked: 0, flushes: 0, syncs: 0, controlCalls: 0, reconnects: 0, probes: 0, maxWaitMs: 0 };
  const d = await ServeDaemon.start(o.dir);
  const pending = new Set<Pending>();
  const deadline = Date.now() + o.seconds * 1000;
  let failure: Error | undefined;
  const connections = new Set<PipelinedNbdClient>();
  // The first failure ends the run at once: every connection is dropped, so nothing waits on.
  const fail = (e: Error) => {
    if (failure) return;
    failure = e;
    log(`stress: FAILING: ${e.message}`);
    // Slow or stuck? Requests answered late are logged until the connections are dropped.
    setTimeout(() => {
      for (const c of connections) c.close();
    }, o.lingerMs ?? 0);
  };
  const connect = async (what: string): Promise<PipelinedNbdClient> => {
    const c = await track(what, openExport(d));
    connections.add(c);
    c.raw.sock.once('close', () => connections.delete(c));
    if (failure) c.close();
    return c;
  };
  const track = async <T>(what: string, p: Promise<T>): Promise<T> => {
    const e: Pending = { what, startMs: Date.now() };
    pending.add(e);
    try {
      return await p;
    } finally {
      if (failure && Date.now() - e.startMs > stallMs) log(`stress: late: ${what} answered after ${Date.now() - e.startMs} ms`);
      pending.delete(e);
      r.maxWaitMs = Math.max(r.maxWaitMs, Date.now() - e.startMs);
      r.requests++;
    }
  };
  const watchdog = setInterval(() => {
    const now = Date.now();
    for (const e of pending) {
      if (now - e.startMs > stallMs) {
        const oldest = [...pending].sort((a, b) => a.startMs - b.startMs).slice(0, 5).map((x) => `${x.what} (${now - x.startMs} ms)`);
        fail(new Error(`watchdog: a request waited more than ${stallMs} ms (seed ${o.seed}); ${pending.size} waiting, oldest: ${oldest.join(', ')}; daemon ${cpuOf(d.proc.pid!)}; threads:\n  ${threadsOf(d.proc.pid!)}\nwaiting: ${[...pending].map((x) => `${x.what} (${now - x.startMs} ms)`).join(', ')}\n${d.log.slice(-20).join('')}`));
        break;
      }
    }
  }, 250);
  const done = () => failure !== undefined || Date.now() >= deadline;
  const socket = path.join(o.dir, 'control.sock');
  const sizing = await openExport(d);
  const m = new AckModel(sizing.sizeBytes / 4096, 4096);
  sizing.close();

  const client = async (n: number): Promise<void> => {
    const crng = new Rng(rng.int(2 ** 32));
    while (!done()) {
      const c = await connect(`client ${n} connect`);
      await clientSession(c, n, crng).catch((err) => fail(err as Error));
      c.close();
      r.reconnects++;
    }
  };

  const clientSession = async (c: PipelinedNbdClient, n: number, crng: Rng): Promise<void> => {
    const bs = 4096;
    // The last MiB is scratch for unaligned writes (their blocks mix two writes: not checked).
    const scratchBlocks = 256;
    const checked = m.blockCount - scratchBlocks;
    const hot = Math.min(512, checked);
    const window = 1 + crng.int(48);
    const inFlight = new Set<Promise<void>>();
    const go = (what: string, p: Promise<void>) => {
      const q = track(`client ${n} ${what} (port ${c.raw.sock.localPort})`, p).catch((err) => {
        if (!abandoned) fail(err as Error);
      }).finally(() => inFlight.delete(q));
      inFlight.add(q);
    };
    let abandoned = false;
    while (!done()) {
      const span = crng.bool(0.5) ? hot : checked;
      const count = o.huge && crng.bool(0.03) ? Math.min(span, 512 + crng.int(1536)) : 1 + crng.int(Math.min(crng.bool(0.8) ? 32 : 256, span));
      const first = crng.int(span - count + 1);
      const pick = crng.next();
      if (pick < 0.45) {
        const id = m.begin(first, count);
        const fua = crng.bool(0.1);
        r.writes++;
        go(`write ${first}+${count}${fua ? ' fua' : ''}`, c.write(first * bs, m.data(id, first, count), fua).then((e) => expectOk(e, 'write')));
      } else if (pick < 0.72) {
        r.reads++;
        go(`read ${first}+${count}`, c.read(first * bs, count * bs).then((data) => {
          for (let i = 0; i < count; i++) {
            if (!m.isSomeWrite(data, i * bs, first + i)) throw new Error(`read of block ${first + i}: bytes no write sent there (seed ${o.seed})`);
          }
          r.blocksChecked += count;
        }));
      } else if (pick < 0.77) {
        r.flushes++;
        go('flush', c.flush().then((e) => expectOk(e, 'flush')));
      } else if (pick < 0.83) {
        m.begin(first, count, true);
        r.writes++;
        go(`zero ${first}+${count}`, c.zero(first * bs, count * bs, crng.bool()).then((e) => expectOk(e, 'zero')));
      } else if (pick < 0.93) {
        const off = checked * bs + crng.int(scratchBlocks * bs - 1);
        const len = 1 + crng.int(Math.min(256 * 1024, scratchBlocks * bs - (off - checked * bs)));
        r.writes++;
        go(`unaligned write ${off}+${len}`, c.write(off, Buffer.alloc(len, 1 + crng.int(255))).then((e) => expectOk(e, 'unaligned write')));
      } else if (pick < 0.99) {
        const off = checked * bs + crng.int(scratchBlocks * bs - 1);
        const len = 1 + crng.int(scratchBlocks * bs - (off - checked * bs));
        r.reads++;
        go(`unaligned read ${off}+${len}`, c.read(off, len).then(() => undefined));
      } else {
        // A client that goes away with requests in flight (a killed mirror job), then comes back;
        // with `huge`, sometimes halfway through sending a write's payload.
        abandoned = true;
        if (o.huge && crng.bool(0.5)) {
          const id = m.begin(first, count);
          c.raw.sendRequest(NBD.CMD_WRITE, first * bs, count * bs, m.data(id, first, count).subarray(0, crng.int(count * bs)));
        }
        c.close();
        break;
      }
      if (inFlight.size >= window) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  };

  const control = async (): Promise<void> => {
    let i = 0;
    while (!done()) {
      await sleep(100 + rng.int(500));
      if (done()) break;
      const pick = rng.next();
      r.controlCalls++;
      try {
        if (pick < 0.6) {
          await track('control sync', controlCall(socket, { method: 'sync', params: { label: `stress-${i++}` } }, undefined, stallMs * 2));
          r.syncs++;
        } else if (pick < 0.8) await track('control events', controlCall(socket, { method: 'events' }, undefined, stallMs * 2));
        else await track('control status', controlCall(socket, { method: 'status' }, undefined, stallMs * 2));
      } catch (err) {
        fail(err as Error);
      }
    }
  };

  // A fresh connection now and then: the hang answered no new connection either.
  const prober = async (): Promise<void> => {
    while (!done()) {
      await sleep(500 + rng.int(1000));
      if (done()) break;
      try {
        const c = await connect('probe connect');
        await track('probe read', c.read(0, 4096));
        c.close();
        r.probes++;
      } catch (err) {
        fail(err as Error);
      }
    }
  };

  try {
    await Promise.all([...Array.from({ length: o.clients ?? 4 }, (_, n) => client(n)), control(), prober()]);
    if (!failure) {
      // Everything written since is readable and sane, and the daemon stops cleanly in time.
      const c = await connect('final connect');
      for (let b = 0; b < m.blockCount - 256; b += 256) {
        const data = await track('final read', c.read(b * 4096, 256 * 4096));
        for (let i = 0; i < 256; i++) if (!m.isSomeWrite(data, i * 4096, b + i)) fail(new Error(`final read of block ${b + i}: bytes no write sent there (seed ${o.seed})`));
        r.blocksChecked += 256;
      }
      c.close();
      const code = await track('stop', d.stop());
      if (code !== 0) fail(new Error(`serve exited ${code} on SIGTERM: ${d.log.slice(-10).join('')}`));
    }
    log(`stress: ${JSON.stringify(r)}`);
  } finally {
    clearInterval(watchdog);
    if (d.proc.exitCode === null && d.proc.signalCode === null) {
      const exited = new Promise((res) => d.proc.once('exit', res));
      d.proc.kill('SIGKILL');
      await exited;
    }
  }
  if (failure) throw failure;
  return r;
}

function expectOk(error: number, what: string): void {
  if (error !== 0) throw new Error(`${what}: NBD error ${error}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

/** The daemon's CPU time so far and its state: a spin shows as R with time climbing, a deadlock as S. */
function cpuOf(pid: number): string {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return `state ${f[0]}, cpu ${((Number(f[11]) + Number(f[12])) / 100).toFixed(1)} s`;
  } catch {
    return 'gone';
  }
}

/** Each thread of the daemon: name, state, kernel wait channel, syscall: where a stall sits. */
function threadsOf(pid: number): string {
  try {
    return fs.readdirSync(`/proc/${pid}/task`).map((t) => {
      const rd = (f: string) => {
        try {
          return fs.readFileSync(`/proc/${pid}/task/${t}/${f}`, 'utf8').trim();
        } catch {
          return '?';
        }
      };
      const st = rd('stat').split(') ')[1]?.split(' ') ?? [];
      return `${t} ${rd('comm')} ${st[0]} cpu ${((Number(st[11]) + Number(st[12])) / 100).toFixed(1)}s wchan ${rd('wchan')} syscall ${rd('syscall').split(' ')[0]}`;
    }).join('\n  ');
  } catch {
    return 'gone';
  }
}
