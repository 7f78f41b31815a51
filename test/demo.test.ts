import assert from 'node:assert/strict';
import * as path from 'node:path';
import { test } from 'node:test';
import { fuseSkipReason, run } from './helpers/fuse-harness';
import { tmpDir } from './helpers/tmp';

test('scripts/demo builds its volume and events, proves the deleted project is in the first image, and cleans up after itself', { skip: fuseSkipReason(), timeout: 240_000 }, () => {
  const r = run('env', [`CHRONOVOL_DEMO_DIR=${path.join(tmpDir('chronovol-demo-'), 'demo')}`, path.resolve(__dirname, '../../scripts/demo'), '--no-wait'], 200_000);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /oops-deleted/);
  assert.match(r.stdout, /demo: ok/);
});
