import * as fs from 'node:fs';
import * as path from 'node:path';
import { controlCall } from '../../src/control/control-client';
import { AckModel } from '../helpers/ack-model';
import { ackedWriteLoad } from '../helpers/ack-load';
import { MountedVolume, isMounted, run } from '../helpers/fuse-harness';
import { PipelinedNbdClient, RawNbdClient, openExport } from '../helpers/nbd-client';
import { Rng } from '../helpers/rng';

type NbdTarget = { connect(): Promise<RawNbdClient> };

export interface SoakOptions {
  /** An initialized volume directory. */
  dir: string;
  mountpoint: string;
  cycles: number;
  seed: number;
  log?: (line: string) => void;
  /**
   * Stop early (the next cycle is the last, with its full check) once the volume's file system
   * has less free space than this: the soak keeps all history, about 80 GB in 1,000 cycles, and a
   * full disk only turns every later cycle into write errors.
   */
  minFreeBytes?: number;
  /**
   * Bounded history: every `pruneEveryCycles` cycles, forget all but the newest `keepEvents`
   * events, then prune while the load runs (so a SIGKILL can land inside the prune). Without it
   * the soak keeps all history.
   */
  keepEvents?: number;
  pruneEveryCycles?: number;
}

export interface SoakResult {
  seed: number;
  cycles: number;
  /** Acknowledged writes whose blocks were checked after a SIGKILL (each write once per check). */
  writesChecked: number;
  /** Blocks compared against the model after restarts. */
  blocksChecked: number;
  /** Sync-event images compared bit-exact after restarts (one event checked once per count). */
  eventsChecked: number;
  eventsRecorded: number;
  problems: string[];
  /** Set when the soak stopped before `cycles` for lack of disk space (minFreeBytes). */
  stoppedForSpace?: boolean;
  /** Events forgotten by the bounded history, and prunes started (some cut by the SIGKILL). */
  eventsForgotten: number;
  prunesStarted: number;
  prunesCompleted: number;
}

interface EventSnapshot {
  label: string;
  /** Per block, the write id the event must show (all writes before it were acknowledged). */
  ids: Int32Array;
  /** The sync's reply arrived (the event must exist after any crash). */
  acknowledged: boolean;
  id?: number;
}

const BS = 4096;

/**
 * The soak of issue 10: `mount` serving FUSE and NBD, written by an independent NBD client (FUA
 * writes, flushes, plain writes, zeroes, sync events over the control socket), SIGKILLed at random
 * moments and restarted. After every restart each block must hold its last acknowledged write or
 * a later one, every acknowledged sync event must exist, and sync events' images must be
 * bit-exact (the newest few and a random older few every cycle, through NBD or the FUSE tree;
 * all of them at the end). Power cuts are not simulated here (see the crash tests).
 */
export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const rng = new Rng(o.seed);
  const log = o.log ?? (() => undefined);
  const r: SoakResult = { seed: o.seed, cycles: 0, writesChecked: 0, blocksChecked: 0, eventsChecked: 0, eventsRecorded: 0, problems: [], eventsForgotten: 0, prunesStarted: 0, prunesCompleted: 0 };
  const socket = path.join(o.dir, 'control.sock');
  const events: EventSnapshot[] = [];
  let model: AckModel | undefined;
  let nextLabel = 0;
  let checkedBefore = 0;

  const problem = (p: string) => {
    r.problems.push(`cycle ${r.cycles}: ${p}`);
    log(`PROBLEM cycle ${r.cycles}: ${p}`);
  };

  let cycles = o.cycles;
  for (let cycle = 0; cycle <= cycles; cycle++) {
    if (cycle < cycles && o.minFreeBytes !== undefined) {
      const st = fs.statfsSync(o.dir);
      if (st.bavail * st.bsize < o.minFreeBytes) {
        log(`soak: less than ${o.minFreeBytes} bytes free under ${o.dir} after ${cycle} cycles: this cycle is the last`);
        r.stoppedForSpace = true;
        cycles = cycle;
      }
    }
    const last = cycle === cycles;
    // NBD on the volume's private Unix socket (<dir>/nbd.sock), beside the FUSE tree.
    const m = await MountedVolume.start(o.dir, o.mountpoint, ['--nbd'], 60_000);
    const d: NbdTarget = { connect: () => RawNbdClient.connect({ path: path.join(o.dir, 'nbd.sock') }) };
    try {
      const c = await openExport(d);
      model ??= new AckModel(c.sizeBytes / BS, BS);
      // Every acknowledged write is there (or a later one).
      if (cycle > 0) {
        const problems: string[] = [];
        const ackedWrites = model.writesAcked;
        for (let b = 0; b < model.blockCount; b += 256) model.checkLive(await c.read(b * BS, 256 * BS), b, problems);
        for (const p of problems.slice(0, 5)) problem(p);
        if (problems.length > 5) problem(`... ${problems.length} blocks wrong in all`);
        r.writesChecked += ackedWrites - checkedBefore;
        checkedBefore = ackedWrites;
        r.blocksChecked += model.blockCount;
      }
      // Events: every acknowledged one exists; images bit-exact.
      const listed = (await controlCall(socket, { method: 'events' })) as Array<{ id: number; label: string }>;
      for (const e of events) {
        const found = listed.find((x) => x.label === e.label);
        if (found) e.id = found.id;
        else if (e.acknowledged) problem(`event ${e.label} was acknowledged and is gone`);
      }
      const present = events.filter((e) => e.id !== undefined);
      const sample = last ? present : [...present.slice(-3), ...Array.from({ length: Math.min(2, present.length) }, () => present[rng.int(present.length)])];
      for (const [i, e] of sample.entries()) {
        const viaFuse = !last && i === 0 && cycle % 2 === 1;
        await checkEvent(c, d, o.mountpoint, model, e, viaFuse, problem);
        r.eventsChecked++;
      }
      c.close();
      if (last) break;

      // Bounded history: forget, then a prune the load (and maybe the kill) runs into.
      let killed = false;
      if (o.keepEvents !== undefined && cycle > 0 && cycle % (o.pruneEveryCycles ?? 20) === 0) {
        const f = (await controlCall(socket, { method: 'retention', params: { op: 'forget', policy: { keepLast: o.keepEvents } } }, undefined, 60_000)) as { forgotten: Array<{ label: string }> };
        const gone = new Set(f.forgotten.map((e) => e.label));
        for (let i = events.length - 1; i >= 0; i--) if (gone.has(events[i].label)) events.splice(i, 1);
        r.eventsForgotten += gone.size;
        r.prunesStarted++;
        // Half the prunes run to their end before the load, half race the load and the kill.
        const t = Date.now();
        const pruned = controlCall(socket, { method: 'retention', params: { op: 'prune' } }, undefined, 600_000).then(
          () => (r.prunesCompleted++, log(`soak: cycle ${cycle}: prune done in ${Date.now() - t} ms`)),
          (err: Error) => killed || problem(`prune failed: ${err.message}`),
        );
        if (rng.bool(0.5)) await pruned;
      }

      // Load, killed at a random moment.
      const c2 = await openExport(d);
      const killAtMs = Date.now() + 200 + rng.int(4000);
      const kill = () => {
        if (!killed) {
          killed = true;
          m.proc.kill('SIGKILL');
        }
      };
      const timer = setTimeout(kill, killAtMs - Date.now());
      while (!killed) {
        const burst = 10 + rng.int(150);
        let n = 0;
        const res = await ackedWriteLoad(c2, model, rng, {
          window: 1 + rng.int(32),
          maxBlocks: 1 + rng.int(128),
          fua: 0.1,
          flush: 0.03,
          zero: 0.05,
          spanBlocks: rng.bool(0.5) ? Math.min(1024, model.blockCount) : undefined,
          stop: () => killed || n++ >= burst,
        });
        if (res.errors) {
          // Which code the daemon answered: its warn/error log lines name it.
          const why = m.log.join('').split('\n').filter((l) => /"level":(40|50)/.test(l)).slice(-3);
          problem(`${res.errors} NBD errors under load${why.length ? `: ${why.join(' | ')}` : ''}`);
        }
        if (res.lost || killed) break;
        // Quiesced: every write sent is acknowledged, so the event's image is known exactly.
        if (rng.bool(0.6)) {
          const e: EventSnapshot = { label: `soak-${o.seed}-${nextLabel++}`, ids: model.acked.slice(), acknowledged: false };
          events.push(e);
          try {
            const got = (await controlCall(socket, { method: 'sync', params: { label: e.label } }, undefined, 60_000)) as { id: number };
            e.acknowledged = true;
            e.id = got.id;
            r.eventsRecorded++;
          } catch {
            break; // killed during the sync: the event may or may not be there
          }
        }
      }
      clearTimeout(timer);
      kill();
      c2.close();
      await new Promise((res) => (m.proc.exitCode !== null || m.proc.signalCode !== null ? res(undefined) : m.proc.once('exit', res)));
      r.cycles++;
      if (r.cycles % 10 === 0) log(`soak: ${JSON.stringify({ ...r, problems: r.problems.length })}`);
    } finally {
      await m.stop('SIGKILL');
      if (isMounted(o.mountpoint)) run('/work/shared/tools/fuse-unstick', [o.mountpoint], 30_000);
      if (isMounted(o.mountpoint)) run('umount', ['-l', o.mountpoint], 30_000);
    }
  }
  return r;
}
async function checkEvent(c: PipelinedNbdClient, d: NbdTarget, mnt: string, model: AckModel, e: EventSnapshot, viaFuse: boolean, problem: (p: string) => void): Promise<void> {
  const chunk = 256;
  let image: Buffer | undefined;
  if (viaFuse) {
    const dirName = fs.readdirSync(path.join(mnt, 'events')).find((n) => n.endsWith(`-${e.label}`));
    if (!dirName) return problem(`event ${e.label} missing from the FUSE tree`);
    // Read from this process, never the daemon's: async, so a hang shows as a stuck cycle.
    image = await fs.promises.readFile(path.join(mnt, 'events', dirName, 'volume.img'));
  }
  const ev = viaFuse ? undefined : await openExport(d, String(e.id));
  try {
    for (let b = 0; b < model.blockCount; b += chunk) {
      const got = image ? image.subarray(b * BS, (b + chunk) * BS) : await ev!.read(b * BS, chunk * BS);
      for (let i = 0; i < chunk; i++) {
        if (!model.expectedBlock(e.ids, b + i).equals(got.subarray(i * BS, (i + 1) * BS))) {
          return problem(`event ${e.label} (${e.id}) differs at block ${b + i}${viaFuse ? ' (FUSE)' : ''}`);
        }
      }
    }
  } finally {
    ev?.close();
    void c;
  }
}
