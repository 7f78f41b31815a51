import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { LocalDirStore } from '../src/archive/local-dir-store';
import { controlCall } from '../src/control/control-client';
import { Volume } from '../src/volume/volume';
import { cli, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';
import { SMALL } from './helpers/volumes';
import { VolumeModel } from './helpers/volume-model';
import { archiveSegmentBytes, assertPruneRecovers, hotWrites } from './helpers/prune';

interface Report { dryRun: boolean; deleted: number[]; rewritten: number[]; freedBytes: number; versionsDropped: number; plan: Array<{ action: string }> }

/** A closed volume whose history has gone through the archive: hot blocks rewritten, an event every 8 writes. */
async function churned(seed: number): Promise<{ dir: string; archive: string }> {
  const root = tmpDir('chronovol-prune-');
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'archive');
  await Volume.create(dir, { ...SMALL, archive });
  const vol = await Volume.open(dir);
  await hotWrites(vol, new VolumeModel(SMALL.sizeBytes), new Rng(seed), 400);
  await vol.close();
  return { dir, archive };
}

test('CLI: prune --dry-run shows the plan and changes nothing; prune frees it; bad values exit 2; verify clean', async () => {
  const { dir, archive } = await churned(5);
  assert.equal(cli(['forget', dir, '--keep-last', '2']).status, 0);
  const before = archiveSegmentBytes(archive);
  const dry = cliJson<Report>(['prune', dir, '--dry-run', '--json']);
  assert.ok(dry.dryRun && dry.deleted.length + dry.rewritten.length > 0 && dry.freedBytes > 0, JSON.stringify(dry));
  assert.equal(archiveSegmentBytes(archive), before, 'a dry run deletes nothing');
  assert.ok(!fs.existsSync(path.join(archive, 'catalog.cvct')));
  const text = cli(['prune', dir, '--dry-run']);
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /would delete \d+ and rewrite \d+ of \d+ archived segments; would free/);
  for (const bad of [['--rewrite-threshold', '2'], ['--rewrite-threshold', 'half'], ['--max-rewrite-bytes', 'lots']]) {
    const r = cli(['prune', dir, ...bad]);
    assert.equal(r.status, 2, `${bad.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /BAD_USAGE/);
  }
  const done = cliJson<Report>(['prune', dir, '--json']);
  assert.deepEqual([done.deleted, done.rewritten], [dry.deleted, dry.rewritten], 'the prune does what its dry run said');
  assert.ok(archiveSegmentBytes(archive) < before);
  assert.ok(fs.existsSync(path.join(archive, 'catalog.cvct')));
  const v = cli(['verify', dir]);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  assert.match(cli(['prune', '--help']).stdout, /--max-rewrite-bytes/);
});

test('daemon: --retention-every forgets then prunes in the background; prune goes through its socket', async () => {
  const { dir, archive } = await churned(6);
  assert.equal(cli(['forget', dir, '--keep-last', '2', '--save', '--dry-run']).status, 0);
  const before = archiveSegmentBytes(archive);
  const d = await ServeDaemon.start(dir, ['--retention-every', '200ms']);
  try {
    for (let i = 0; i < 100 && !fs.existsSync(path.join(archive, 'catalog.cvct')); i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(fs.existsSync(path.join(archive, 'catalog.cvct')), `the scheduled prune wrote its catalog: ${d.log.join('')}`);
    // Through the socket: the scheduled one did the work already (or is finishing it: one prune at a time).
    const r = cliJson<Report>(['prune', dir, '--json']);
    assert.equal(r.dryRun, false);
    assert.ok(archiveSegmentBytes(archive) < before);
    assert.equal(cliJson<unknown[]>(['events', dir]).length, 2);
  } finally {
    assert.equal(await d.stop(), 0);
  }
  const v = cli(['verify', dir]);
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('SIGKILL of a daemon mid-prune (local directory): the volume opens, verifies, every kept event exports bit-exact, prune again finishes with no leftovers', async () => {
  let cutShort = 0;
  // Killed as soon as the first rewritten object appears in the archive (before the catalog
  // names it), as soon as the catalog appears (before the index step and the deletes), and at once.
  const triggers: Array<[string, (archive: string) => boolean]> = [
    ['a rewritten object', (a) => fs.readdirSync(path.join(a, 'segments')).some((f) => /\.g1\.cvseg$/.test(f))],
    ['the catalog', (a) => fs.existsSync(path.join(a, 'catalog.cvct'))],
    ['the request', () => true],
  ];
  for (const [n, [what, ready]] of triggers.entries()) {
    const root = tmpDir('chronovol-prune-kill-');
    const dir = path.join(root, 'vol');
    const archive = path.join(root, 'archive');
    await Volume.create(dir, { ...SMALL, archive });
    const vol = await Volume.open(dir);
    const model = new VolumeModel(SMALL.sizeBytes);
    const events = await hotWrites(vol, model, new Rng(100 + n), 400, 30);
    await vol.close();
    assert.equal(cli(['forget', dir, '--keep-last', '2']).status, 0);
    const kept = events.slice(-2);
    const d = await ServeDaemon.start(dir);
    const call = controlCall(path.join(dir, 'control.sock'), { method: 'retention', params: { op: 'prune' } }).catch((err: Error) => err);
    let settled = false;
    void call.then(() => (settled = true));
    while (!settled && !ready(archive)) await new Promise((r) => setImmediate(r));
    d.proc.kill('SIGKILL');
    await new Promise((r) => d.proc.once('exit', r));
    const answer = await call;
    if (answer instanceof Error) cutShort++;
    const ctx = `killed at ${what} (${answer instanceof Error ? 'cut short' : 'it had finished'})`;
    await assertPruneRecovers(ctx, dir, root, kept, model, new LocalDirStore(archive));
  }
  console.log(`${cutShort} of ${triggers.length} kills landed before the prune answered`);
  assert.ok(cutShort >= 2, 'the kills at the first rewrite and at the catalog landed mid-prune');
});
