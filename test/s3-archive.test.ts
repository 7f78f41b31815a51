import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { cli, cliJson } from './helpers/cli';
import { Rng } from './helpers/rng';
import { S3Server, startS3Server } from './helpers/s3-server';
import { tmpDir } from './helpers/tmp';

let s3: S3Server;
before(async () => {
  s3 = await startS3Server();
});
after(async () => {
  await s3?.stop();
});

/**
 * init with the archive in S3 (s3rver, a real server in its own process), write past the working
 * set so segments go to the archive, delete the volume directory, recover from S3 alone: every
 * event the archive holds exports bit-exact.
 */
async function endToEnd(name: string, encrypt: boolean): Promise<void> {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  const url = `s3://${s3.bucket}/${name}`;
  const keyFile = path.join(root, 'archive.key');
  const keyArgs = encrypt ? ['--key-file', keyFile] : [];
  const init = cli(['init', dir, '--size', '1M', '--segment-size', '64K', '--archive', url, '--archive-endpoint', s3.endpoint, ...(encrypt ? ['--encrypt', ...keyArgs, '--new-key'] : [])]);
  assert.equal(init.status, 0, init.stderr);
  if (encrypt) {
    assert.match(init.stderr, /without this file the archive cannot be read/);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
  }
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  assert.equal(config.archive, url);
  assert.equal(config.archiveEndpoint, s3.endpoint);
  assert.equal(config.encryption !== undefined, encrypt);
  assert.ok(!JSON.stringify(config).includes(fs.existsSync(keyFile) ? fs.readFileSync(keyFile, 'utf8').trim() : 'no key'), 'no secret in config.json');

  const rng = new Rng(21);
  const images = new Map<string, Buffer>();
  for (let i = 0; i < 6; i++) {
    const img = rng.bytes(1 << 20);
    images.set(`e${i}`, img);
    fs.writeFileSync(path.join(root, 'img'), img);
    cliJson(['import', dir, path.join(root, 'img'), '--label', `e${i}`]);
  }
  cliJson(['sync', dir]);
  const st = cliJson<{ archive: { segments: number; location: string } }>(['status', dir]);
  assert.ok(st.archive.segments > 20, `segments archived: ${st.archive.segments}`);
  assert.match(st.archive.location, encrypt ? /^encrypted s3:\/\// : /^s3:\/\//);

  fs.rmSync(dir, { recursive: true, force: true });
  const rec = path.join(root, 'rec');
  if (encrypt) {
    const other = path.join(root, 'other.key');
    cli(['init', path.join(root, 'scratch'), '--size', '1M', '--encrypt', '--key-file', other, '--new-key']);
    const keyless = cli(['recover', rec, '--archive', url, '--archive-endpoint', s3.endpoint, '--json']);
    assert.equal(keyless.status, 2, keyless.stderr);
    assert.match(JSON.parse(keyless.stdout).error.message, /is encrypted: give its key with --key-file/);
    const wrong = cli(['recover', rec, '--archive', url, '--archive-endpoint', s3.endpoint, '--key-file', other, '--json']);
    assert.equal(wrong.status, 1, wrong.stderr);
    assert.equal(JSON.parse(wrong.stdout).error.code, 'ARCHIVE_WRONG_KEY');
    fs.rmSync(rec, { recursive: true, force: true });
  }
  const report = cliJson<{ events: number; segments: number }>(['recover', rec, '--archive', url, '--archive-endpoint', s3.endpoint, ...keyArgs]);
  assert.ok(report.segments === st.archive.segments, `recovered ${report.segments} of ${st.archive.segments} archived segments`);
  const events = cliJson<Array<{ label: string }>>(['events', rec]);
  assert.ok(events.length >= 3, `events recovered: ${events.length}`);
  for (const e of events) {
    const out = cli(['export', rec, '--at', e.label]);
    assert.equal(out.status, 0, out.stderr);
    assert.ok(out.stdoutBytes.equals(images.get(e.label)!), `event ${e.label} is bit-exact`);
  }
  // The recovered volume keeps its archive in S3, sealed the same way.
  const recConfig = JSON.parse(fs.readFileSync(path.join(rec, 'config.json'), 'utf8'));
  assert.deepEqual({ ...recConfig }, { ...config });
}

test('S3 end to end: init on s3rver, archive, delete the volume directory, recover from S3: every archived event bit-exact', async () => {
  await endToEnd('plain', false);
});

test('S3 end to end, encrypted: the same, a wrong key refused with ARCHIVE_WRONG_KEY', async () => {
  await endToEnd('sealed', true);
});

test('cli: archive options are checked (exit 2): --encrypt without --key-file, an endpoint for a directory, a bad URL', () => {
  const root = tmpDir();
  const r1 = cli(['init', path.join(root, 'a'), '--size', '1M', '--encrypt', '--json']);
  assert.equal(r1.status, 2);
  assert.equal(JSON.parse(r1.stdout).error.code, 'BAD_ARGUMENT');
  assert.equal(cli(['init', path.join(root, 'b'), '--size', '1M', '--archive', path.join(root, 'arch'), '--archive-endpoint', 'http://127.0.0.1:1']).status, 2);
  assert.equal(cli(['init', path.join(root, 'c'), '--size', '1M', '--archive', 'ftp://x/y']).status, 2);
  assert.equal(cli(['init', path.join(root, 'd'), '--size', '1M', '--key-file', path.join(root, 'k')]).status, 2);
  assert.match(cli(['init', '--help']).stdout, /--archive-endpoint/);
});
