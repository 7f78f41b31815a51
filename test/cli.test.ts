import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { cli, cliJson } from './helpers/cli';
import { Rng } from './helpers/rng';
import { tmpDir } from './helpers/tmp';

test('cli: init, import with a label, write, sync, events, export by label/seq/time, status, verify', () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const init = cliJson<{ sizeBytes: number; workingSetSegments: number }>(['init', dir, '--size', '8M', '--segment-size', '256K']);
  assert.equal(init.sizeBytes, 8 << 20);
  const image = new Rng(5).bytes(5 << 20);
  fs.writeFileSync(path.join(root, 'img'), image);
  const imp = cliJson<{ bytes: number; event: { id: number; seq: number } }>(['import', dir, path.join(root, 'img'), '--label', 'base']);
  assert.equal(imp.bytes, image.length);
  const w = cli(['write', dir, '--offset', '4096'], 'hello');
  assert.equal(w.status, 0, w.stderr);
  const ev = cliJson<{ id: number; label: string }>(['sync', dir, '--label', 'hello']);
  assert.equal(ev.label, 'hello');
  const events = cliJson<Array<{ id: number; label: string; seq: number }>>(['events', dir]);
  assert.deepEqual(events.map((e) => e.label), ['base', 'hello']);
  const base = cli(['export', dir, '--at', 'base']).stdoutBytes;
  assert.ok(base.subarray(0, image.length).equals(image) && base.subarray(image.length).equals(Buffer.alloc((8 << 20) - image.length)));
  const bySeq = cli(['export', dir, '--at', `seq:${imp.event.seq}`, '--offset', '4096', '--length', '5']).stdoutBytes;
  assert.ok(bySeq.equals(image.subarray(4096, 4101)));
  assert.equal(cli(['export', dir, '--at', 'hello', '--offset', '4096', '--length', '5']).stdout, 'hello');
  assert.equal(cli(['export', dir, '--at', new Date().toISOString(), '--offset', '4096', '--length', '5']).stdout, 'hello');
  const out = path.join(root, 'out.img');
  const ex = cliJson<{ bytes: number }>(['export', dir, '--at', 'live', '--out', out]);
  assert.equal(ex.bytes, 8 << 20);
  const st = cliJson<{ log: { events: number; copyForwardWriteAmp: number }; segments: { inPrimary: number; primaryLimit: number } }>(['status', dir]);
  assert.equal(st.log.events, 2);
  assert.ok(st.segments.inPrimary <= st.segments.primaryLimit);
  assert.equal(cliJson<{ ok: boolean }>(['verify', dir]).ok, true);
  assert.match(cli(['events', dir]).stdout, /ID\s+SEQ\s+TIME/);
});

test('cli: errors are clear and have stable exit codes and JSON', () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  assert.equal(cli(['init', dir, '--size', '1000']).status, 2, 'size not a multiple of the block size');
  assert.equal(cli(['init', dir, '--size', 'lots']).status, 2, 'a non-size is bad usage');
  assert.equal(cli(['init', dir, '--size', '4M']).status, 0);
  const past = cli(['write', dir, '--offset', String(4 << 20)], 'x');
  assert.equal(past.status, 2);
  assert.match(past.stderr, /past the end.*\[OUT_OF_RANGE\]/);
  const unknown = cli(['export', dir, '--at', 'nope', '--json', '--out', path.join(root, 'x')]);
  assert.equal(unknown.status, 2);
  assert.equal(JSON.parse(unknown.stdout).error.code, 'UNKNOWN_POINT');
  assert.equal(cli(['status', root]).status, 2, 'not a volume');
  assert.match(cli(['--help']).stdout, /Points in time/);
  assert.match(cli(['init', '--help']).stdout, /--working-set/);
});

test('cli: verify exits 1 on damage; recover rebuilds from the archive alone', () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const archive = path.join(root, 'arch');
  cliJson(['init', dir, '--size', '1M', '--segment-size', '64K', '--archive', archive]);
  const rng = new Rng(9);
  for (let i = 0; i < 12; i++) {
    fs.writeFileSync(path.join(root, 'img'), rng.bytes(1 << 20));
    cliJson(['import', dir, path.join(root, 'img'), '--label', `i${i}`]);
  }
  const st = cliJson<{ archive: { segments: number } }>(['status', dir]);
  assert.ok(st.archive.segments > 0);
  const rec = cliJson<{ events: number }>(['recover', path.join(root, 'rec'), '--archive', archive]);
  assert.ok(rec.events > 0);
  const recEvents = cliJson<Array<{ label: string }>>(['events', path.join(root, 'rec')]);
  for (const e of recEvents) {
    assert.ok(cli(['export', path.join(root, 'rec'), '--at', e.label]).stdoutBytes.equals(cli(['export', dir, '--at', e.label]).stdoutBytes), e.label);
  }
  const seg = fs.readdirSync(path.join(archive, 'segments'))[0];
  const p = path.join(archive, 'segments', seg);
  const b = fs.readFileSync(p);
  b[200] ^= 1;
  fs.writeFileSync(p, b);
  const v = cli(['verify', dir]);
  assert.equal(v.status, 1);
  assert.match(v.stdout, /DAMAGE archived-segment/);
});
