import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { segmentFileName } from '../src/format/constants';
import { LIVE_SEQ } from '../src/volume/events';
import { Volume } from '../src/volume/volume';
import { whiteBox } from '../src/volume/white-box';
import { cli } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { freshVolume } from './helpers/volumes';

const BS = 4096;
const MIB = 1 << 20;

/**
 * Block 256 (at 1 MiB: the second chunk of a streamed export) holds 0xab in a segment whose
 * is sealed; one of its data bytes is then flipped on disk. The volume opens (the
 * damage is below the checkpoint, never replayed) and a read of that block fails CORRUPT_BLOCK.
 */
async function damagedSecondChunk(): Promise<{ dir: string; first: Buffer }> {
  const { dir, vol } = await freshVolume({ sizeBytes: 2 * MIB, blockSizeBytes: BS, segmentSizeBytes: 256 * 1024 });
  let where: { segment: number; offset: number };
  let first: Buffer;
  try {
    await vol.write(0, Buffer.alloc(BS, 0x11));
    await vol.write(MIB, Buffer.alloc(BS, 0xab));
    // Fill past the first segment so block 256's record is in a sealed one (replay reads only the current).
    for (let b = 1; b < 100; b++) await vol.write(b * BS, Buffer.alloc(BS, b));
    await vol.sync({ label: 'e0' });
    first = await vol.read(0, MIB);
    const v = whiteBox(vol).index.floor(MIB / BS, LIVE_SEQ)!;
    where = { segment: v.segment, offset: v.offset };
    assert.ok(whiteBox(vol).segments.sealed.includes(v.segment), 'block 256 is in a sealed segment');
  } finally {
    await vol.close();
  }
  const fd = fs.openSync(path.join(dir, 'segments', segmentFileName(where.segment)), 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, where.offset + 4 + 100); // the unit is (crc32c, data): a data byte
  b[0] ^= 0x20;
  fs.writeSync(fd, b, 0, 1, where.offset + 4 + 100);
  fs.closeSync(fd);
  const check = await Volume.open(dir, { cacheBytes: 0 });
  try {
    await assert.rejects(check.read(MIB, BS), /CORRUPT_BLOCK|checksum/i, 'the flipped block is refused when read directly');
  } finally {
    await check.close();
  }
  return { dir, first };
}

/**
 * Review 4, finding 1 (issue 10): an export through a daemon is a reply line and then the image's
 * bytes. A read that failed mid-stream used to write its JSON error line into that stream: the
 * client took it for image bytes, and when fewer image bytes remained than the line is long, the
 * export exited 0 with the JSON as the image's tail. An error after the first byte must fail the
 * export with its own code, and no byte that is not the image's may reach the output.
 */
test('an export through a daemon that fails mid-stream exits non-zero with the read error, and writes no byte that is not the image', { timeout: 120_000 }, async () => {
  const { dir, first } = await damagedSecondChunk();
  const d = await ServeDaemon.start(dir, ['--cache', '0']);
  try {
    for (const length of [MIB + 50, 2 * MIB]) {
      const out = path.join(path.dirname(dir), `out-${length}.img`);
      const r = cli(['export', dir, '--at', 'e0', '--length', String(length), '--out', out]);
      assert.notEqual(r.status, 0, `export of ${length} bytes across a damaged block exited 0: ${r.stderr}`);
      assert.match(r.stderr, /CORRUPT_BLOCK/, `the daemon's own error code reaches the user: ${r.stderr}`);
      const got = fs.readFileSync(out);
      assert.ok(got.length <= MIB, `${got.length} bytes written: only the first chunk was image bytes`);
      assert.ok(got.equals(first.subarray(0, got.length)), 'every byte written is the image\'s');
      const stdout = cli(['export', dir, '--at', 'e0', '--length', String(length)]);
      assert.notEqual(stdout.status, 0, 'to stdout as well');
      assert.ok(!stdout.stdoutBytes.includes(Buffer.from('"ok":false')), 'no error line on stdout');
    }
    // The daemon keeps serving: a range clear of the damage exports whole.
    const clean = cli(['export', dir, '--at', 'e0', '--length', String(MIB)]);
    assert.equal(clean.status, 0, clean.stderr);
    assert.ok(clean.stdoutBytes.equals(first));
  } finally {
    assert.equal(await d.stop(), 0);
  }
});

/** One request as a client from before frames sends it (no `frames`): every byte until the daemon closes. */
function rawExport(socket: string, params: Record<string, unknown>): Promise<{ reply: Record<string, unknown>; bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const sock = net.createConnection({ path: socket }, () => sock.write(JSON.stringify({ method: 'export', params }) + '\n'));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', () => undefined); // a cut connection is the answer under test
    sock.on('close', () => {
      const all = Buffer.concat(chunks);
      const nl = all.indexOf(10);
      if (nl < 0) return reject(new Error(`no reply line: ${all.toString()}`));
      resolve({ reply: JSON.parse(all.subarray(0, nl).toString()), bytes: all.subarray(nl + 1) });
    });
  });
}

/**
 * Review 5: a client from before frames (an older chronovol against this daemon, over
 * --control-listen say) does not ask for them, so it gets the raw bytes it expects; and on an
 * error mid-stream, a cut connection (it reports "closed early"), never an error line or a frame
 * header it would count as image bytes.
 */
test('an export asked without frames (an older client) gets raw image bytes, and on a mid-stream error a cut connection, never other bytes', { timeout: 120_000 }, async () => {
  const { dir, first } = await damagedSecondChunk();
  const d = await ServeDaemon.start(dir, ['--cache', '0']);
  try {
    const socket = path.join(dir, 'control.sock');
    const clean = await rawExport(socket, { at: 'e0', length: MIB });
    assert.equal(clean.reply.length, MIB);
    assert.equal(clean.reply.framed, undefined, 'not framed unless asked');
    assert.ok(clean.bytes.equals(first), 'raw: exactly the image');
    const failed = await rawExport(socket, { at: 'e0', length: MIB + 50 });
    assert.equal(failed.reply.length, MIB + 50);
    assert.ok(failed.bytes.length < MIB + 50, `${failed.bytes.length} bytes: the connection was cut before the announced length`);
    assert.ok(failed.bytes.equals(first.subarray(0, failed.bytes.length)), 'every byte sent is the image\'s');
  } finally {
    assert.equal(await d.stop(), 0);
  }
});
