import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { MountedVolume, fuseSkipReason, ok, run } from './helpers/fuse-harness';
import { makePsk } from './helpers/tls-creds';
import { tmpDir } from './helpers/tmp';

const WATCHDOG_MS = 240_000;
const NOBODY = ['-u', 'nobody', '--'];

/**
 * Tries, as `nobody`, to open every path (files read, directories listed, sockets connected);
 * returns the paths it got into. The script lives where nobody can read it.
 */
function reachableByNobody(root: string, paths: string[]): string[] {
  const script = path.join(root, 'probe.js');
  fs.writeFileSync(script, `
const fs = require('fs'), net = require('net');
(async () => {
  const got = [];
  for (const p of process.argv.slice(2)) {
    try {
      const st = fs.lstatSync(p);
      if (st.isDirectory()) fs.readdirSync(p);
      else if (st.isSocket()) await new Promise((res, rej) => { const s = net.createConnection(p); s.once('connect', () => (s.destroy(), res())); s.once('error', rej); });
      else fs.closeSync(fs.openSync(p, 'r'));
      got.push(p);
    } catch {}
  }
  process.stdout.write(JSON.stringify(got));
})();
`, { mode: 0o644 });
  const r = ok('runuser', [...NOBODY, process.execPath, script, ...paths], 60_000);
  return JSON.parse(r.stdout) as string[];
}

/** Every path under `dir` (itself included) with its mode and type. */
function walk(dir: string): Array<{ p: string; mode: number; kind: 'dir' | 'file' | 'socket' }> {
  const out: Array<{ p: string; mode: number; kind: 'dir' | 'file' | 'socket' }> = [];
  const visit = (p: string) => {
    const st = fs.lstatSync(p);
    out.push({ p, mode: st.mode & 0o777, kind: st.isDirectory() ? 'dir' : st.isSocket() ? 'socket' : 'file' });
    if (st.isDirectory()) for (const n of fs.readdirSync(p)) visit(path.join(p, n));
  };
  visit(dir);
  return out;
}

function assertPrivate(trees: string[], root: string, o: { dirMode: number; fileMode: number } = { dirMode: 0o700, fileMode: 0o600 }): string[] {
  const all = trees.flatMap(walk);
  for (const e of all) {
    const want = e.kind === 'dir' ? o.dirMode : e.kind === 'socket' ? 0o600 : o.fileMode;
    assert.equal(e.mode.toString(8), want.toString(8), `${e.p} (${e.kind})`);
  }
  assert.deepEqual(reachableByNobody(root, all.map((e) => e.p)), [], 'nobody got into none of them');
  return all.map((e) => e.p);
}

/** The volume's parent is open to everyone: only the volume's own modes keep others out. */
function openRoot(): string {
  const root = tmpDir('chronovol-private-');
  fs.chmodSync(root, 0o755);
  return root;
}

test('private files: as nobody, the Unix socket, plain TCP, the control socket and every file of the volume and its archive are refused, files made after open too', { timeout: WATCHDOG_MS }, async () => {
  const root = openRoot();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  const publicSock = path.join(root, 'nbd-public.sock');
  cliJson(['init', dir, '--size', '1M', '--segment-size', '64K', '--archive', archive]);
  const creds = makePsk(root, ['replica']);
  fs.chmodSync(creds.serverFile, 0o600);
  const d = await ServeDaemon.start(dir, ['--socket', publicSock, '--tls-psk', creds.serverFile], { tcp: true });
  let before: string[];
  try {
    before = assertPrivate([dir, archive], root);
    assert.equal(fs.statSync(publicSock).mode & 0o777, 0o600);
    // The NBD socket, outside the volume, is refused by its own mode; TCP wants TLS first.
    const viaSocket = run('runuser', [...NOBODY, 'qemu-io', '-r', '-f', 'raw', '-c', 'read 0 4k', d.url('live')]);
    assert.notEqual(viaSocket.status, 0);
    assert.match(viaSocket.stderr, /Permission denied/);
    const viaTcp = run('runuser', [...NOBODY, 'qemu-io', '-f', 'raw', '-c', 'write -P 0x66 0 4k', d.tcpUrl('live')]);
    assert.notEqual(viaTcp.status, 0);
    assert.match(viaTcp.stderr, /TLS/);
    const status = run('runuser', [...NOBODY, process.execPath, path.resolve(__dirname, '../src/cli/main.js'), 'status', dir]);
    assert.notEqual(status.status, 0, 'nobody cannot reach the control socket or the volume');
    // Root writes through the volume several times over: new segments, turnover into the archive.
    for (let i = 1; i <= 6; i++) ok('qemu-io', ['-f', 'raw', '-c', `write -P ${i} 0 1M`, d.url('live')]);
    cliJson(['sync', dir, '--label', 'after']);
  } finally {
    await d.stop();
  }
  // After close (the checkpoint writes index runs and the manifest): everything, old and new.
  const after = assertPrivate([dir, archive], root);
  const created = after.filter((p) => !before.includes(p));
  assert.ok(created.some((p) => p.startsWith(path.join(dir, 'segments'))), `new segments: ${created.join(' ')}`);
  assert.ok(created.some((p) => p.startsWith(archive + path.sep)), `new archive objects: ${created.join(' ')}`);
  assert.ok(created.some((p) => p.startsWith(path.join(dir, 'index'))), `new index runs: ${created.join(' ')}`);
});

test('private files: --socket-group opens the Unix socket to that group, and only then (the probe can tell)', { timeout: WATCHDOG_MS }, async () => {
  const root = openRoot();
  const dir = path.join(root, 'vol');
  const sock = path.join(root, 'group.sock');
  cliJson(['init', dir, '--size', '1M', '--segment-size', '64K']);
  const d = await ServeDaemon.start(dir, ['--socket', sock, '--socket-group', 'nogroup']);
  try {
    assert.equal(fs.statSync(sock).mode & 0o777, 0o660);
    const r = run('runuser', [...NOBODY, 'qemu-io', '-r', '-f', 'raw', '-c', 'read -P 0 0 4k', d.url('live')]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(reachableByNobody(root, [sock]), [sock]);
  } finally {
    await d.stop();
  }
});

test('private files: open refuses a volume directory others can reach (UNSAFE_PERMISSIONS); --allow-group-access takes 0750 and creates 0640', { timeout: WATCHDOG_MS }, () => {
  const root = openRoot();
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', '1M', '--segment-size', '64K']);
  fs.chmodSync(dir, 0o755);
  const refused = cli(['status', dir, '--json']);
  assert.notEqual(refused.status, 0);
  assert.equal((JSON.parse(refused.stdout) as { error: { code: string } }).error.code, 'UNSAFE_PERMISSIONS');
  assert.match(refused.stderr, /chmod -R go-rwx/);
  fs.chmodSync(dir, 0o750);
  assert.equal(JSON.parse(cli(['status', dir, '--json']).stdout).error.code, 'UNSAFE_PERMISSIONS', 'group access needs the option');
  const before = new Set(walk(dir).map((e) => e.p));
  const data = path.join(root, 'data.bin');
  fs.writeFileSync(data, Buffer.alloc(1 << 20, 7));
  for (let i = 0; i < 3; i++) assert.equal(cli(['--allow-group-access', 'write', dir, '--offset', '0', '--input', data]).status, 0);
  const created = walk(dir).filter((e) => !before.has(e.p) && e.kind === 'file');
  assert.ok(created.length > 0);
  for (const e of created) assert.equal(e.mode.toString(8), '640', e.p);
  fs.chmodSync(dir, 0o770);
  assert.equal(JSON.parse(cli(['--allow-group-access', 'status', dir, '--json']).stdout).error.code, 'UNSAFE_PERMISSIONS', 'a group-writable directory is refused even so');
  fs.chmodSync(dir, 0o700);
  assert.equal(cli(['status', dir]).status, 0);
  // init --allow-group-access makes the directory 0750 from the start.
  const g = path.join(root, 'grp');
  assert.equal(cli(['--allow-group-access', 'init', g, '--size', '1M', '--segment-size', '64K']).status, 0);
  assert.equal((fs.statSync(g).mode & 0o777).toString(8), '750');
  assert.equal((fs.statSync(path.join(g, 'superblock')).mode & 0o777).toString(8), '640');
});

test('private files: the FUSE tree refuses nobody unless mounted --allow-other, which then follows --gid and --mode', { timeout: WATCHDOG_MS, skip: fuseSkipReason() }, async () => {
  const root = openRoot();
  const dir = path.join(root, 'vol');
  const mnt = path.join(root, 'mnt');
  cliJson(['init', dir, '--size', '1M', '--segment-size', '64K']);
  cliJson(['sync', dir, '--label', 'first']);
  let m = await MountedVolume.start(dir, mnt, ['--nbd']);
  try {
    assert.notEqual(run('runuser', [...NOBODY, 'ls', mnt]).status, 0);
    assert.notEqual(run('runuser', [...NOBODY, 'cat', path.join(mnt, 'status.json')]).status, 0);
    assert.equal(run('ls', [mnt]).status, 0, 'the owner gets in');
    // mount --nbd serves NBD on the volume's private socket.
    const sock = path.join(dir, 'nbd.sock');
    assert.equal((fs.statSync(sock).mode & 0o777).toString(8), '600');
    ok('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0 0 4k', `nbd+unix:///live?socket=${sock}`]);
  } finally {
    await m.cleanup();
  }
  m = await MountedVolume.start(dir, mnt, ['--allow-other', '--gid', '65534', '--mode', '0640']);
  try {
    const past = path.join(mnt, 'events/1/volume.img');
    const r = run('runuser', [...NOBODY, 'head', '-c', '4096', past]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.out.length, 4096);
    const w = run('runuser', [...NOBODY, 'dd', 'if=/dev/zero', `of=${path.join(mnt, 'live/volume.img')}`, 'bs=4k', 'count=1', 'conv=notrunc', 'status=none']);
    assert.notEqual(w.status, 0, 'the group may read, not write');
    assert.match(w.stderr, /Permission denied/);
    assert.equal((fs.statSync(past).mode & 0o777).toString(8), '440', 'read-only files never get w');
  } finally {
    await m.cleanup();
  }
});
