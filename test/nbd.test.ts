import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { NBD } from '../src/nbd/nbd-protocol';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { ok, run } from './helpers/fuse-harness';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

const WATCHDOG_MS = 180_000;

function volume(size = '64M'): { root: string; dir: string } {
  const root = tmpDir('chronovol-nbd-');
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', size, '--segment-size', '4M']);
  return { root, dir };
}

test('nbd: qemu-img convert into live, sync while serving, qemu-img compare of the event export', { timeout: WATCHDOG_MS }, async () => {
  const { root, dir } = volume();
  const src = path.join(root, 'src.img');
  fs.writeFileSync(src, new Rng(1).bytes(64 << 20));
  const d = await ServeDaemon.start(dir);
  try {
    ok('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, d.url('live')], 120_000);
    const ev = cliJson<{ id: number; label: string }>(['sync', dir, '--label', 'converted']);
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url('converted')]).stdout, /identical/);
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url(String(ev.id))]).stdout, /identical/);
    // A later change shows in live but not in the event.
    ok('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 1M', d.url('live')]);
    assert.equal(run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url('live')]).status, 1);
    assert.match(ok('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', src, d.url('converted')]).stdout, /identical/);
  } finally {
    await d.stop();
  }
});

test('nbd: qemu-io patterns with writeback and flushes; writes to past exports fail', { timeout: WATCHDOG_MS }, async () => {
  const { dir } = volume();
  const d = await ServeDaemon.start(dir, ['--sync-on-flush']);
  try {
    const io = (exp: string, ...cmds: string[]) => run('qemu-io', ['-f', 'raw', '-t', 'writeback', ...cmds.flatMap((c) => ['-c', c]), d.url(exp)]);
    const ioRead = (exp: string, ...cmds: string[]) => run('qemu-io', ['-r', '-f', 'raw', ...cmds.flatMap((c) => ['-c', c]), d.url(exp)]);
    const w = io('live', 'write -P 0xa1 0 64k', 'write -P 0xb2 1M 4k', 'write -z 2M 128k', 'flush', 'read -P 0xa1 0 64k', 'read -P 0xb2 1M 4k', 'read -P 0 2M 128k');
    assert.equal(w.status, 0, w.stderr + w.stdout);
    assert.doesNotMatch(w.stdout, /Pattern verification failed/);
    // --sync-on-flush made the flush a crash-consistent event.
    const events = cliJson<Array<{ id: number; kind: string; label: string }>>(['events', dir]);
    const flushEvent = events.find((e) => e.kind === 'crash');
    assert.ok(flushEvent, 'a crash-consistent event at the flush');
    io('live', 'write -P 0xc3 0 64k', 'flush');
    const past = ioRead(String(flushEvent!.id), 'read -P 0xa1 0 64k');
    assert.equal(past.status, 0, past.stderr);
    assert.doesNotMatch(past.stdout, /Pattern verification failed/);
    const denied = io(String(flushEvent!.id), 'write -P 0xff 0 4k');
    assert.notEqual(denied.status, 0);
    assert.match(denied.stderr + denied.stdout, /Permission denied|read-only/i);
    // Server side, without the client's own read-only check: EPERM.
    const c = await d.connect();
    const info = await c.go(String(flushEvent!.id));
    assert.ok('flags' in info && (info.flags & NBD.FLAG_READ_ONLY) !== 0);
    c.sendRequest(NBD.CMD_WRITE, 0, 4096, Buffer.alloc(4096, 1));
    assert.equal((await c.reply()).error, NBD.EPERM);
    c.sendRequest(NBD.CMD_READ, 64 << 20, 4096);
    assert.equal((await c.reply()).error, NBD.EINVAL, 'out of range');
    c.sendRequest(NBD.CMD_READ, 0, 65536);
    const r = await c.reply(65536);
    assert.ok(r.data.equals(Buffer.alloc(65536, 0xa1)));
    c.close();
  } finally {
    await d.stop();
  }
});

test('nbd: handshake options: LIST, INFO, unknown export, unsupported options, ABORT', { timeout: WATCHDOG_MS }, async () => {
  const { dir } = volume();
  cliJson(['sync', dir, '--label', 'first']);
  const d = await ServeDaemon.start(dir);
  try {
    const c = await d.connect();
    c.sendOption(NBD.OPT_LIST);
    const names: string[] = [];
    for (;;) {
      const r = await c.optionReply();
      if (r.type === NBD.REP_ACK) break;
      assert.equal(r.type, NBD.REP_SERVER);
      names.push(r.data.toString('utf8', 4, 4 + r.data.readUInt32BE(0)));
    }
    assert.deepEqual(names, ['live', '1']);
    c.sendOption(8 /* STRUCTURED_REPLY */);
    assert.equal((await c.optionReply()).type, NBD.REP_ERR_UNSUP);
    c.sendOption(999);
    assert.equal((await c.optionReply()).type, NBD.REP_ERR_UNSUP);
    assert.deepEqual(await c.go('no-such-export'), { error: NBD.REP_ERR_UNKNOWN });
    c.sendOption(NBD.OPT_ABORT);
    assert.equal((await c.optionReply()).type, NBD.REP_ACK);
    assert.ok(await c.closed());
    const c2 = await d.connect();
    const info = await c2.go('first');
    assert.ok('size' in info && info.size === 64 << 20);
    c2.close();
  } finally {
    await d.stop();
  }
});

test('nbd: pipelined small writes from two clients at once land exactly', { timeout: WATCHDOG_MS }, async () => {
  const { dir } = volume();
  const d = await ServeDaemon.start(dir);
  try {
    // Client A writes even 4 KiB blocks, B odd ones, each as 256 pipelined aio writes.
    const script = (parity: number) => {
      const cmds: string[] = [];
      for (let i = 0; i < 256; i++) cmds.push('-c', `aio_write -P ${(i * 2 + parity) % 251 + 1} ${(i * 2 + parity) * 4096} 4k`);
      cmds.push('-c', 'aio_flush');
      return cmds;
    };
    const start = (parity: number) => new Promise<number | null>((resolve) => spawn('qemu-io', ['-f', 'raw', '-t', 'writeback', ...script(parity), d.url('live')], { stdio: 'ignore' }).once('exit', resolve));
    const codes = await Promise.all([start(0), start(1)]);
    assert.deepEqual(codes, [0, 0]);
    const image = cli(['export', dir, '--at', 'live', '--length', String(512 * 4096)]).stdoutBytes;
    for (let b = 0; b < 512; b++) assert.ok(image.subarray(b * 4096, (b + 1) * 4096).equals(Buffer.alloc(4096, (b % 251) + 1)), `block ${b}`);
  } finally {
    await d.stop();
  }
});

test('nbd: a client that vanishes mid-request, an oversized request and bad magic close only that connection; the volume verifies', { timeout: WATCHDOG_MS }, async () => {
  const { dir } = volume();
  const d = await ServeDaemon.start(dir);
  try {
    const steady = await d.connect();
    await steady.go('live');
    steady.sendRequest(NBD.CMD_WRITE, 0, 4096, Buffer.alloc(4096, 7));
    assert.equal((await steady.reply()).error, 0);

    const halfway = await d.connect();
    await halfway.go('live');
    halfway.sendRequest(NBD.CMD_WRITE, 8192, 65536, Buffer.alloc(30000, 9)); // header says 64 KiB, sends 30000 bytes
    halfway.close();

    const big = await d.connect();
    await big.go('live');
    big.sendRequest(NBD.CMD_READ, 0, 64 << 20);
    assert.ok(await big.closed(), 'an oversized request closes the connection');

    const bad = await d.connect();
    await bad.go('live');
    bad.sendRequest(NBD.CMD_READ, 0, 4096, undefined, 0, 0xdeadbeef);
    assert.ok(await bad.closed(), 'bad request magic closes the connection');

    // The other client carries on.
    steady.sendRequest(NBD.CMD_FLUSH, 0, 0);
    assert.equal((await steady.reply()).error, 0);
    steady.sendRequest(NBD.CMD_READ, 0, 4096);
    assert.ok((await steady.reply(4096)).data.equals(Buffer.alloc(4096, 7)));
    steady.sendRequest(NBD.CMD_DISC, 0, 0);
    assert.ok(await steady.closed());
  } finally {
    await d.stop();
  }
  assert.equal(cliJson<{ ok: boolean }>(['verify', dir]).ok, true);
  assert.ok(cli(['export', dir, '--at', 'live', '--offset', '8192', '--length', '65536']).stdoutBytes.equals(Buffer.alloc(65536)), 'the half-sent write left nothing behind');
});

test('import --changed-only writes only the blocks that differ', { timeout: WATCHDOG_MS }, () => {
  const { root, dir } = volume('16M');
  const rng = new Rng(3);
  const img = rng.bytes(16 << 20);
  const file = path.join(root, 'primary.img');
  fs.writeFileSync(file, img);
  cliJson(['import', dir, file, '--label', 'full']);
  const changed = [5, 6, 7, 1000, 4095];
  for (const b of changed) rng.bytes(4096).copy(img, b * 4096);
  fs.writeFileSync(file, img);
  const r = cliJson<{ writtenBytes: number; event: { label: string } }>(['import', dir, file, '--changed-only', '--label', 'delta']);
  assert.equal(r.writtenBytes, changed.length * 4096);
  assert.ok(cli(['export', dir, '--at', 'delta']).stdoutBytes.equals(img));
});
