import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { FileSystem } from '../src/storage/file-system';
import { NodeFileSystem } from '../src/storage/node-file-system';
import { Volume } from '../src/volume/volume';
import { CLI } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { tmpDir } from './helpers/tmp';

/** The real file system, but not a NodeFileSystem: VolumeDir then takes the pid-check fallback lock. */
function pidLockedFs(): FileSystem {
  const real = new NodeFileSystem();
  return {
    open: (p, m) => real.open(p, m), exists: (p) => real.exists(p), readFile: (p) => real.readFile(p), readFileAsync: (p, o) => real.readFileAsync(p, o),
    list: (d) => real.list(d), mkdirp: (d) => real.mkdirp(d), remove: (p) => real.remove(p), removeAsync: (p) => real.removeAsync(p), rename: (a, b) => real.rename(a, b),
    syncDir: (d) => real.syncDir(d), syncDirAsync: (d) => real.syncDirAsync(d),
  };
}

/** The state letter of /proc/<pid>/stat ('Z': a zombie), or undefined once the pid is gone. */
function procState(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).charAt(0);
  } catch {
    return undefined;
  }
}

async function until<T>(what: string, probe: () => T | undefined, watchdogMs = 30_000): Promise<T> {
  const deadline = Date.now() + watchdogMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`watchdog: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Defect 8 of issue 10. Before the fix (the lock judged by whether LOCK's pid exists) the restart
// was refused with LOCKED for as long as the killed serve stayed a zombie.
test('lock: a restart right after SIGKILL is not refused while the dead serve is still a zombie; a live owner is', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  await Volume.create(dir, { sizeBytes: 1 << 20, blockSizeBytes: 4096, segmentSizeBytes: 64 * 1024, archive: path.join(root, 'archive') });
  // serve's parent becomes `sleep` (exec keeps the pid), which never reaps a child: once killed,
  // serve stays a zombie until the test ends the sleep.
  const parent = spawn('/bin/sh', ['-c', '"$0" "$1" serve "$2" & echo "pid $!"; exec sleep 600', process.execPath, CLI, dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CHRONOVOL_LOG: 'warn' },
  });
  let out = '';
  let err = '';
  parent.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  parent.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  let next: ServeDaemon | undefined;
  try {
    await until(`serve did not start: ${out} ${err}`, () => (out.includes('serving ') ? true : undefined));
    const pid = Number(/pid (\d+)/.exec(out)![1]);
    assert.equal(JSON.parse(fs.readFileSync(path.join(dir, 'LOCK'), 'utf8')).pid, pid);
    process.kill(pid, 'SIGKILL');
    await until('the killed serve did not become a zombie', () => (procState(pid) === 'Z' ? true : undefined));

    // Without the addon the lock falls back to LOCK's pid: a zombie counts as dead there too.
    const viaPid = await Volume.open(dir, { fs: pidLockedFs() });
    await viaPid.close();

    next = await ServeDaemon.start(dir); // refused with LOCKED before the fix
    assert.equal(procState(pid), 'Z', 'the restart happened while the old owner was still a zombie');

    // A live owner is still refused, by name.
    await assert.rejects(Volume.open(dir), (e: unknown) => isChronoError(e, 'LOCKED') && e.message.includes(`process ${next!.proc.pid} (serve)`));
    assert.equal(await next.stop(), 0);
    next = undefined;
    const vol = await Volume.open(dir); // and a cleanly stopped one lets go
    await vol.close();
  } finally {
    await next?.stop();
    parent.kill('SIGKILL');
  }
});

test('lock: a second opener in the same process is refused; the lock is free again after close', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  await Volume.create(dir, { sizeBytes: 1 << 20, blockSizeBytes: 4096, segmentSizeBytes: 64 * 1024, archive: path.join(root, 'archive') });
  const vol = await Volume.open(dir, { role: 'test' });
  await assert.rejects(Volume.open(dir), (e: unknown) => isChronoError(e, 'LOCKED') && /already open in this process/.test(e.message));
  await vol.close();
  assert.equal(fs.existsSync(path.join(dir, 'LOCK')), false);
  await (await Volume.open(dir)).close();
});
