import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { openExport } from './helpers/nbd-client';
import { Rng } from './helpers/rng';
import { S3Server, startS3Server } from './helpers/s3-server';
import { tmpDir } from './helpers/tmp';

// Issue 14, "Archive outage", end to end: a served volume archives to a real S3 server (s3rver,
// its own process); the server is SIGKILLed mid-stream while an NBD client writes; writes go on
// into the backlog, then one waits (delayed, not failed) while the server is down; the server
// restarts on the same directory and port, the write completes, the backlog drains and primary
// returns to K + 1; then the volume directory is deleted and `recover` from S3 brings back every
// event bit-exact.

const SIZE = 1 << 20;
const SEG = 64 << 10;
const BACKLOG_SEGMENTS = 4;

interface Status {
  volume: { workingSetSegments: number };
  segments: { inPrimary: number; primaryLimit: number; awaitingArchive: number[] };
  archive: { state: string; failingSince: string | null; writesWaitingSince: string | null; error: string | null; backlog: { segments: number; bytes: number; limitSegments: number }; lag: { segments: number }; oldestUnarchivedSeconds: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms = 90_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

test('archive outage (s3rver SIGKILLed mid-stream): NBD writes go on into the backlog, past it a write is delayed not failed, the restarted server gets the backlog, and recover from S3 brings back every event bit-exact', { timeout: 600_000 }, async () => {
  let s3: S3Server = await startS3Server('chronovol-outage');
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const url = `s3://${s3.bucket}/vol`;
  const init = cli(['init', dir, '--size', '1M', '--segment-size', '64K', '--archive', url, '--archive-endpoint', s3.endpoint, '--archive-backlog', `${BACKLOG_SEGMENTS * 64}K`, '--archive-stall-timeout', '3m']);
  assert.equal(init.status, 0, init.stderr);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(config.archiveBacklogBytes, BACKLOG_SEGMENTS * SEG);
  assert.equal(config.archiveStallTimeoutMs, 180_000);
  const daemon = await ServeDaemon.start(dir, ['--seal-after', '1s']);
  const rng = new Rng(14);
  const live = Buffer.alloc(SIZE);
  const images = new Map<string, Buffer>();
  const status = () => cliJson<Status>(['status', dir]);
  let n = 0;
  try {
    const nbd = await openExport(daemon, 'live');
    const write = async () => {
      const off = rng.int(SIZE / 4096 - 16) * 4096;
      const data = rng.bytes(4096 * (1 + rng.int(16)));
      const err = await nbd.write(off, data);
      assert.equal(err, 0, `NBD write at ${off} answered error ${err}`);
      data.copy(live, off);
    };
    const event = async () => {
      assert.equal(await nbd.flush(), 0);
      const label = `e${n++}`;
      const r = cli(['sync', dir, '--label', label]);
      assert.equal(r.status, 0, r.stderr);
      images.set(label, Buffer.from(live));
    };
    const k = status().volume.workingSetSegments;
    // Healthy, past turnover.
    for (let i = 0; i < 4 * k; i++) {
      await write();
      if (i % 20 === 19) await event();
    }
    // (A transient failure under load shows as 'retrying' until the next try gets through.)
    await until('the archive to be healthy', () => status().archive.state === 'ok');
    const healthy = status();
    assert.ok(healthy.segments.inPrimary <= k + 1);
    assert.equal(healthy.segments.primaryLimit, k + 1 + BACKLOG_SEGMENTS);

    // SIGKILL the server while writes stream (a write is in flight when it dies).
    const inFlight = write();
    await s3.kill();
    await inFlight;
    // Writes go on (none fails) until one waits for the archive: the backlog is full, or the
    // write needs more rollovers than the backlog has room for (a 64 KiB write can need two).
    // A write not answered within 1.5 s is slow or waiting: status says which. (No CLI call
    // blocks this process's event loop while a write is timed.)
    let settled: string | false = false;
    let settledAtMs = 0;
    let waiting: Promise<void> | undefined;
    for (let i = 0; !waiting; i++) {
      assert.ok(i < 20_000, 'a write waits once the backlog is full');
      settled = false;
      const p = write();
      p.then(
        () => ((settled = 'completed'), (settledAtMs = Date.now())),
        (err: Error) => (settled = `failed: ${err.message}`),
      );
      if (await Promise.race([p.then(() => true), sleep(1500).then(() => false)])) {
        // Events only well inside the backlog: a sync record needing a rollover would wait too.
        if (i % 40 === 39 && status().segments.inPrimary < k + BACKLOG_SEGMENTS) await event();
        continue;
      }
      await until('the slow write to finish or status to show it waiting', () => settled !== false || status().archive.writesWaitingSince !== null, 120_000);
      if (settled === false) waiting = p;
      else await p; // slow, not waiting (a failure throws here)
    }
    assert.equal(settled, false, 'the write is still waiting');
    // The outage shows once an attempt has failed (the store retries a request before it gives up).
    await until('status to name when the outage began', () => status().archive.failingSince !== null, 90_000);
    const full = status();
    assert.equal(full.archive.state, 'backlog-full');
    assert.ok(full.archive.failingSince, 'status names when the outage began');
    assert.ok(full.archive.error, 'and the last error');
    // K + 1 + backlog, or one fewer when the waiting write needs two rollovers (DESIGN rule 8).
    assert.ok(full.segments.inPrimary >= k + BACKLOG_SEGMENTS && full.segments.inPrimary <= k + 1 + BACKLOG_SEGMENTS, `primary holds ${full.segments.inPrimary} segments, K + 1 + backlog is ${k + 1 + BACKLOG_SEGMENTS}`);
    assert.ok(full.archive.backlog.segments >= BACKLOG_SEGMENTS - 1 && full.archive.oldestUnarchivedSeconds > 0, JSON.stringify(full.archive));
    await sleep(2000);
    assert.equal(settled, false, 'still waiting, not failed');

    // The server comes back on the same directory and port: the write completes, the backlog drains.
    // (Delayed means answered only once the archive is back: no fixed delay, which load would skew.)
    const restartMs = Date.now();
    s3 = await startS3Server('chronovol-outage', { directory: s3.directory, port: s3.port });
    await waiting;
    assert.ok(settledAtMs >= restartMs, `the write was answered ${restartMs - settledAtMs} ms before the server came back`);
    for (let i = 0; i < 30; i++) await write();
    await event();
    // --seal-after seals the last event's segment; wait for the archive to hold everything.
    await until('the backlog to drain and the archive to catch up', () => {
      const s = status();
      return s.archive.state === 'ok' && s.archive.lag.segments === 0 && s.segments.inPrimary <= k + 1;
    });
    const drained = status();
    assert.equal(drained.archive.backlog.segments, 0);
    assert.equal(drained.archive.error, null);
    assert.ok(daemon.log.join('').includes('archive backlog full'), 'the log says the backlog was full');
    nbd.close();
  } catch (err) {
    // The daemon's log says what the archiver met.
    (err as Error).message += `\n--- serve's log (tail):\n${daemon.log.join('').slice(-6000)}`;
    throw err;
  } finally {
    await daemon.stop();
  }

  // Lose primary; recover from S3 alone.
  fs.rmSync(dir, { recursive: true, force: true });
  const rec = path.join(root, 'rec');
  cliJson(['recover', rec, '--archive', url, '--archive-endpoint', s3.endpoint]);
  const events = cliJson<Array<{ label: string }>>(['events', rec]);
  assert.deepEqual(events.map((e) => e.label).sort(), [...images.keys()].sort(), 'every event is recovered');
  for (const e of events) {
    const out = cli(['export', rec, '--at', e.label]);
    assert.equal(out.status, 0, out.stderr);
    assert.ok(out.stdoutBytes.equals(images.get(e.label)!), `event ${e.label} is bit-exact`);
  }
  await s3.stop();
});
