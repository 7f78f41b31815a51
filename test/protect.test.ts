import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CLI } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { chronovol, isMounted, ok, run } from './helpers/fuse-harness';
import { filesIn, filesOfImage, protectWatch, qsdSkipReason, sleep, startWriter } from './helpers/protect-harness';
import { tmpDir } from './helpers/tmp';

const MiB = 1 << 20;
const SIZE = 64 * MiB;
const TARGET_TIMEOUT_MS = 2000;
const BS = 4096;

test('protect: a primary in use is mirrored, survives our daemon killed and a resync, and fails back block-exactly', { skip: qsdSkipReason(), timeout: 240_000 }, async () => {
  const dir = tmpDir('chronovol-protect-');
  const vol = path.join(dir, 'vol');
  const prim = path.join(dir, 'prim.img');
  const appImg = path.join(dir, 'app.img');
  const mnt = path.join(dir, 'mnt');
  const state = path.join(dir, 'state');
  const alertLog = path.join(dir, 'alert.log');
  ok(process.execPath, [CLI, 'init', vol, '--size', String(SIZE)]);
  fs.writeFileSync(prim, Buffer.alloc(0));
  fs.truncateSync(prim, SIZE);
  ok('mkfs.ext4', ['-q', '-F', prim]);
  fs.mkdirSync(mnt);
  const { status, waitFor, identicalFrozen } = protectWatch(state, { dir, vol, mnt, prim });
  /** A new file, then `agent sync --freeze`: the event's image holds exactly the mount's files. */
  const hooks = path.join(dir, 'hooks.log');
  const agentEvent = (label: string, file: string, bytes: number) => {
    fs.writeFileSync(path.join(mnt, file), crypto.randomBytes(bytes));
    const files = filesIn(mnt);
    // The hooks run around the freeze: the pre hook sees the file system writable, the post hook too (thawed).
    const probe = `touch ${mnt}/.probe && rm ${mnt}/.probe && echo`;
    ok(process.execPath, [CLI, 'agent', 'sync', '--label', label, '--freeze', mnt, '--protect', state, '--pre', `${probe} pre-${label} >> ${hooks}`, '--post', `${probe} post-${label} >> ${hooks}`]);
    const image = path.join(dir, `${label}.img`);
    ok(process.execPath, [CLI, 'export', vol, '--at', label, '--out', image]);
    assert.deepEqual(filesOfImage(image, dir), files, `event ${label} holds exactly the files the mount had`);
    return { files, image };
  };
  let serve: ServeDaemon | undefined;
  let protect: ChildProcess | undefined;
  let loop: string | undefined;
  let writer: ReturnType<typeof startWriter> | undefined;
  const protectLog: string[] = [];
  try {
    // Protect starts before our daemon: the application works on the primary at once, and the
    // initial copy then runs while it writes.
    protect = spawn(process.execPath, [CLI, 'protect', vol, '--primary', prim, '--app-export', `fuse:${appImg}`, '--state-dir', state,
      '--target-timeout', `${TARGET_TIMEOUT_MS}ms`, '--rpo', '1s', '--alert', `echo "$CHRONOVOL_PROTECT_STATE" >> ${alertLog}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    protect.stderr!.on('data', (c: Buffer) => protectLog.push(c.toString()));
    await new Promise<void>((resolve, reject) => {
      protect!.stdout!.on('data', (c: Buffer) => c.toString().includes('protecting ') && resolve());
      protect!.once('exit', (code) => reject(new Error(`protect exited ${code}: ${protectLog.join('')}`)));
    });
    loop = ok('losetup', ['-f', '--show', appImg]).stdout.trim();
    ok('mount', [loop, mnt]);
    writer = startWriter(mnt, dir);
    await sleep(300);
    serve = await ServeDaemon.start(vol);
    await waitFor('mirroring after the initial copy', (p) => p.state === 'mirroring');
    const initial = status().lastResync!;
    assert.equal(initial.reason, 'initial');
    assert.ok(initial.bytes >= SIZE, 'the initial copy moved the whole primary (and what the application wrote meanwhile)');
    fs.rmSync(alertLog, { force: true }); // the alert ran at the start too (not yet protected): count from here

    // Event 1 from the agent, with the file system frozen: exactly the files the mount had.
    await writer.pause();
    const { files: atE1, image: e1Image } = agentEvent('e1', 'first', 300_000);
    identicalFrozen('primary and the replica identical');
    writer.resume();
    await sleep(500);

    // Our daemon dies while the application writes with fsync.
    serve.proc.kill('SIGKILL');
    await new Promise((r) => serve!.proc.once('exit', r));
    await waitFor('disconnected', (p) => p.state === 'disconnected');
    await sleep(1500); // past the RPO: the alert runs
    await writer.pause();
    const dirty = status().dirtyBytes!;
    assert.ok(status().lagMs > 1000, 'the lag grows while disconnected');
    serve = await ServeDaemon.start(vol);
    const resynced = (await waitFor('mirroring after the resync', (p) => p.state === 'mirroring' && p.lastResync?.reason === 'resync')).lastResync!;
    writer.resume();
    await sleep(300);
    await writer.pause();
    const lines = fs.readFileSync(writer.log, 'utf8').trim().split('\n');
    assert.deepEqual(lines.filter((l) => l.startsWith('ERR')), [], 'the application saw no error');
    const worstMs = Math.max(...lines.map((l) => Number(l.split(' ')[1])));
    assert.ok(worstMs < TARGET_TIMEOUT_MS, `no write waited longer than --target-timeout (worst ${worstMs} ms)`);
    assert.ok(lines.length > 10, `the application kept writing (${lines.length} writes)`);
    // Bytes moved ≈ bytes dirtied: what the bitmap held when our daemon came back, no more than
    // a little journal write-back besides, and far from the whole disk.
    assert.ok(dirty > 0 && resynced.bytes >= dirty && resynced.bytes <= dirty + 2 * MiB, `resync moved ${resynced.bytes} bytes for ${dirty} dirtied`);
    assert.ok(resynced.bytes < SIZE / 4);
    console.log(`resync: ${resynced.bytes} bytes (bitmap said ${dirty}) at ${resynced.mbPerSecond.toFixed(1)} MB/s; worst app write ${worstMs} ms`);
    assert.match(fs.readFileSync(alertLog, 'utf8'), /disconnected/, 'the alert ran once the lag passed the RPO');

    // Event 2 after the resync; primary and replica identical again; both events exact.
    agentEvent('e2', 'second', 200_000);
    assert.deepEqual(fs.readFileSync(hooks, 'utf8').trim().split('\n'), ['pre-e1', 'post-e1', 'pre-e2', 'post-e2']);
    const busy = run(process.execPath, [CLI, 'agent', 'sync', '--label', 'never', '--freeze', mnt, '--protect', state, '--pre', 'exit 3']);
    assert.equal(busy.status, 1, 'a failed pre hook aborts the event');
    fs.writeFileSync(path.join(mnt, 'still-writable'), 'x'); // and nothing was left frozen
    identicalFrozen('primary and the replica identical again after the resync');
    assert.deepEqual(filesOfImage(e1Image, dir), atE1);
    const entries = JSON.parse(ok(process.execPath, [CLI, 'events', state, '--json']).stdout) as Array<{ kind: string; reason?: string; beginSeq?: number; endSeq?: number; lostMs?: number; endMs?: number; label?: string }>;
    assert.deepEqual(entries.map((e) => (e.kind === 'resync' ? `window:${e.reason}` : e.label)), ['window:initial', 'e1', 'window:resync', 'e2']);
    const w = entries[2];
    const refused = chronovol(['export', vol, '--at', `seq:${w.beginSeq! + 1}`, '--out', path.join(dir, 'x.img')]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /POINT_IN_RESYNC/);
    assert.match(chronovol(['export', vol, '--at', new Date(w.lostMs! + 10).toISOString(), '--out', path.join(dir, 'x.img')]).stderr, /POINT_IN_RESYNC/, 'a time after the loss');

    // Our daemon hangs (SIGSTOP) while the application writes: cut off within --target-timeout.
    fs.writeFileSync(writer.log, '');
    writer.resume();
    await sleep(300);
    process.kill(serve.proc.pid!, 'SIGSTOP');
    await waitFor('the hung target cut off', (p) => p.state === 'disconnected', 3 * TARGET_TIMEOUT_MS);
    await sleep(500);
    process.kill(serve.proc.pid!, 'SIGCONT');
    await waitFor('mirroring after the hang', (p) => p.state === 'mirroring');
    await writer.pause();
    const hung = fs.readFileSync(writer.log, 'utf8').trim().split('\n');
    assert.deepEqual(hung.filter((l) => l.startsWith('ERR')), [], 'the application saw no error');
    const worstHungMs = Math.max(...hung.map((l) => Number(l.split(' ')[1])));
    assert.ok(worstHungMs > TARGET_TIMEOUT_MS / 2 && worstHungMs < TARGET_TIMEOUT_MS + 750, `a write waited about --target-timeout, no longer (worst ${worstHungMs} ms; the margin is for dd itself on a loaded machine)`);
    identicalFrozen('primary and the replica identical after the hang');

    // Failback: the application and protect stop; e1 goes back onto the primary, only the blocks that differ.
    await writer.stop();
    writer = undefined;
    ok('umount', [mnt]);
    ok('losetup', ['-d', loop]);
    loop = undefined;
    protect.kill('SIGTERM');
    await new Promise((r) => protect!.once('exit', r));
    protect = undefined;
    const before = fs.readFileSync(prim);
    const want = fs.readFileSync(e1Image);
    let differing = 0;
    for (let b = 0; b < SIZE; b += BS) if (before.compare(want, b, b + BS, b, b + BS) !== 0) differing++;
    const r = JSON.parse(ok(process.execPath, [CLI, 'restore', vol, '--at', 'e1', '--to', prim, '--json']).stdout) as { blocksWritten: number };
    assert.equal(r.blocksWritten, differing, 'exactly the differing blocks were written');
    assert.ok(differing > 0 && differing < SIZE / BS / 4);
    assert.ok(fs.readFileSync(prim).equals(want), 'the primary is at e1');
    assert.deepEqual(filesOfImage(prim, dir), atE1);
    const again = JSON.parse(ok(process.execPath, [CLI, 'restore', vol, '--at', 'e1', '--to', prim, '--json']).stdout) as { blocksWritten: number };
    assert.equal(again.blocksWritten, 0);
    // The same over NBD (qemu-nbd serving the primary): e2 back, compared through the export.
    const sock = path.join(dir, 'prim-nbd.sock');
    const qnbd = spawn('qemu-nbd', ['-k', sock, '-x', 'prim', '-f', 'raw', prim], { stdio: 'ignore' });
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await sleep(25);
    const e2 = fs.readFileSync(path.join(dir, 'e2.img'));
    let differingE2 = 0;
    for (let b = 0; b < SIZE; b += BS) if (want.compare(e2, b, b + BS, b, b + BS) !== 0) differingE2++;
    const viaNbd = JSON.parse(ok(process.execPath, [CLI, 'restore', vol, '--at', 'e2', '--to', `nbd+unix:///prim?socket=${sock}`, '--json']).stdout) as { blocksWritten: number };
    await Promise.race([new Promise((r) => qnbd.once('exit', r)), sleep(5000)]);
    if (qnbd.exitCode === null) qnbd.kill('SIGKILL');
    assert.equal(viaNbd.blocksWritten, differingE2);
    assert.ok(fs.readFileSync(prim).equals(e2), 'the primary is at e2, written over NBD');
  } catch (err) {
    console.error(protectLog.join('').slice(-4000));
    throw err;
  } finally {
    await writer?.stop();
    if (isMounted(mnt)) run('umount', ['-l', mnt]);
    if (loop) run('losetup', ['-d', loop]);
    if (protect && protect.exitCode === null) {
      protect.kill('SIGTERM');
      await Promise.race([new Promise((r) => protect!.once('exit', r)), sleep(10_000)]);
      if (protect.exitCode === null) protect.kill('SIGKILL');
    }
    if (isMounted(appImg)) run('fusermount', ['-uz', appImg]);
    await serve?.stop();
  }
});
