import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { test } from 'node:test';
import { NBD } from '../src/nbd/nbd-protocol';
import { CLI, CliResult, cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { openExport } from './helpers/nbd-client';
import { tmpDir } from './helpers/tmp';

const WATCHDOG_MS = 180_000;
const BS = 4096;

/** The CLI in a child, without blocking this process (the NBD client here keeps streaming). */
function cliAsync(args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, CHRONOVOL_NO_PROGRESS: '1' } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.stderr.on('data', (c: Buffer) => err.push(c));
    p.on('close', (status) => resolve({ status: status ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), stdoutBytes: Buffer.concat(out) }));
  });
}

/**
 * Issue 10: deleting a clone while an NBD client had `clone/<name>` open closed the overlay under
 * it: the client got CLOSED errors mid-stream (and its requests could reach a reused descriptor).
 * The export is a holder, as a FUSE handle is: the delete is refused (CLONE_IN_USE) while it is
 * attached, the stream goes on unharmed, and the delete succeeds once the client has left.
 */
test('nbd: a clone cannot be deleted while an NBD client has clone/<name> open (CLONE_IN_USE); its stream goes on; deleted once it disconnects', { timeout: WATCHDOG_MS }, async () => {
  const root = tmpDir('chronovol-nbd-clone-');
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', '16M', '--segment-size', '4M']);
  cliJson(['sync', dir, '--label', 'one']);
  cliJson(['clone', dir, 'c', '--at', 'one']);
  const d = await ServeDaemon.start(dir);
  try {
    const c = await openExport(d, 'clone/c');
    const block = (i: number) => Buffer.alloc(BS, i & 0xff);
    // A stream of writes, flushes and read-backs running across the delete.
    let stop = false;
    const errors: string[] = [];
    let done = 0;
    const stream = (async () => {
      for (let i = 0; !stop || i < 8; i++) {
        const at = (i % 256) * BS;
        const w = await c.write(at, block(i));
        if (w) errors.push(`write ${i}: error ${w}`);
        if (i % 8 === 7 && (await c.flush())) errors.push(`flush ${i}`);
        const r = await c.read(at, BS).catch((e: Error) => (errors.push(`read ${i}: ${e.message}`), block(i)));
        if (!r.equals(block(i))) errors.push(`read ${i}: other bytes`);
        done++;
      }
    })();
    const refused = await cliAsync(['clone', dir, 'c', '--delete']);
    stop = true;
    await stream;
    assert.deepEqual(errors, [], 'the client saw no error mid-stream');
    assert.notEqual(refused.status, 0, 'delete refused while the export is open');
    assert.match(refused.stderr, /CLONE_IN_USE/);
    assert.ok(done > 8, `${done} rounds`);
    assert.ok((await c.read(0, BS)).length === BS);
    assert.equal(await c.flush(), 0);
    // The client leaves (NBD_CMD_DISC), and the clone can go.
    c.raw.sendRequest(NBD.CMD_DISC, 0, 0);
    assert.equal(await c.raw.closed(), true);
    const deleted = await cliAsync(['clone', dir, 'c', '--delete']);
    assert.equal(deleted.status, 0, deleted.stderr);
    // A client that drops its socket without DISC releases it too.
    cliJson(['clone', dir, 'c', '--at', 'one']);
    const c2 = await openExport(d, 'clone/c');
    assert.equal(await c2.write(0, block(1)), 0);
    assert.match((await cliAsync(['clone', dir, 'c', '--delete'])).stderr, /CLONE_IN_USE/);
    c2.close();
    const again = await cliAsync(['clone', dir, 'c', '--delete']);
    assert.equal(again.status, 0, again.stderr);
  } finally {
    await d.stop();
  }
});
