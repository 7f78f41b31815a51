import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { isChronoError } from '../src/errors';
import { NbdAccess } from '../src/nbd/nbd-access';
import { readPskFile } from '../src/nbd/nbd-tls';
import { cli, cliJson } from './helpers/cli';
import { tmpDir } from './helpers/tmp';

test('nbd access rules: exports by name, live, past and *; writeLive; unknown identities get nothing; no file means all rights', () => {
  const root = tmpDir('chronovol-access-');
  const f = path.join(root, 'access.json');
  fs.writeFileSync(f, JSON.stringify({ identities: { replica: { exports: '*', writeLive: true }, restore: { exports: ['live', 'past'] }, audit: { exports: ['past'] }, one: { exports: ['before-upgrade'] } } }));
  const a = NbdAccess.fromFile(f);
  const live = { name: 'live', live: true };
  const past = { name: 'before-upgrade', live: false };
  assert.deepEqual(a.allows('replica', live), { write: true });
  assert.deepEqual(a.allows('restore', live), { write: false });
  assert.deepEqual(a.allows('restore', past), { write: false });
  assert.equal(a.allows('audit', live), undefined);
  assert.deepEqual(a.allows('audit', past), { write: false });
  assert.deepEqual(a.allows('one', past), { write: false });
  assert.equal(a.allows('one', { name: '3', live: false }), undefined);
  assert.equal(a.allows('mallory', past), undefined);
  assert.equal(a.knows('mallory'), false);
  assert.equal(a.knows('audit'), true);
  assert.deepEqual(a.allows(undefined, live), { write: true }, 'a trusted local client');
  assert.deepEqual(NbdAccess.open().allows('anyone', live), { write: true });
  // Clone exports: named, by `clones` or by `*`, and then writable; `past` never names them.
  const clone = { name: 'clone/try', live: false, clone: true };
  fs.writeFileSync(f, JSON.stringify({ identities: { lab: { exports: ['clones'] }, audit: { exports: ['past'] }, all: { exports: '*' }, one: { exports: ['clone/try'] } } }));
  const c = NbdAccess.fromFile(f);
  assert.deepEqual(c.allows('lab', clone), { write: true });
  assert.equal(c.allows('lab', past), undefined);
  assert.equal(c.allows('audit', clone), undefined);
  assert.deepEqual(c.allows('all', clone), { write: true });
  assert.deepEqual(c.allows('one', clone), { write: true });
  assert.deepEqual(c.allows(undefined, clone), { write: true }, 'a trusted local client writes clones');
  for (const bad of ['[]', '{"identities": {"x": {}}}', '{"identities": {"x": {"exports": ["a"], "writeLive": "yes"}}}', 'not json']) {
    fs.writeFileSync(f, bad);
    assert.throws(() => NbdAccess.fromFile(f), (e) => isChronoError(e, 'BAD_ARGUMENT'), bad);
  }
});

test('nbd psk file: identity:hexkey lines as qemu and nbdkit read them; malformed lines are refused with their number', () => {
  const root = tmpDir('chronovol-psk-');
  const f = path.join(root, 'keys.psk');
  fs.writeFileSync(f, '# comment\nreplica:00112233445566778899aabbccddeeff\n\nbackup-host.example:abcd\n');
  const keys = readPskFile(f);
  assert.deepEqual([...keys.keys()], ['replica', 'backup-host.example']);
  assert.equal(keys.get('replica')!.toString('hex'), '00112233445566778899aabbccddeeff');
  for (const bad of ['replica\n', 'replica:xyz\n', ':abcd\n', 'replica:abc\n', 'a:b:abcd\n', '']) {
    fs.writeFileSync(f, bad);
    assert.throws(() => readPskFile(f), (e) => isChronoError(e, 'BAD_ARGUMENT'), JSON.stringify(bad));
  }
});

test('serve: TCP without TLS or --insecure, TLS without --listen, both TLS kinds, --nbd-access without TLS are usage errors (exit 2)', () => {
  const root = tmpDir('chronovol-usage-');
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', '1M', '--segment-size', '64K']);
  const psk = path.join(root, 'k.psk');
  fs.writeFileSync(psk, 'a:abcd\n');
  const cases: Array<[string[], RegExp]> = [
    [['--listen', '127.0.0.1:0'], /needs TLS/],
    [['--tls-psk', psk], /give --listen/],
    [['--listen', '127.0.0.1:0', '--tls-psk', psk, '--tls-certs', root], /not both/],
    [['--listen', '127.0.0.1:0', '--insecure', '--nbd-access', psk], /TLS identities/],
    [['--listen', '127.0.0.1:0', '--tls-certs', path.join(root, 'nope')], /cannot read ca-cert.pem/],
  ];
  for (const [args, message] of cases) {
    const r = cli(['serve', dir, ...args]);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  assert.equal(fs.existsSync(path.join(dir, 'LOCK')), false, 'nothing was left holding the volume');
});
