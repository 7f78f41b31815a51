import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { serveExport } from '../src/control/control-export';
import { silentLogger } from '../src/log';
import { whiteBox } from '../src/volume/white-box';
import { tmpDir } from './helpers/tmp';
import { freshVolume } from './helpers/volumes';
import { sleep } from './helpers/versioned-blocks';

// An export holds its point until the last byte (DESIGN rule 26), so a client that takes in
// nothing must be cut off. Before the fix the cut-off was the socket's idle timeout, which bytes
// the client SENDS reset too: one byte a minute, reading nothing, kept the hold (and so blocked
// forget and prune of that point) for good.

test('export: a client that reads nothing is cut off after the stall time even while it keeps sending bytes; the hold goes', async () => {
  const { vol } = await freshVolume({ sizeBytes: 32 << 20, blockSizeBytes: 4096, segmentSizeBytes: 1 << 20 });
  const stallMs = 600;
  const served: Array<Promise<void>> = [];
  const server = net.createServer((sock) => served.push(serveExport(vol, sock, { at: 'live', frames: true }, silentLogger(), stallMs)));
  const socket = path.join(tmpDir(), 'export.sock');
  await new Promise<void>((r) => server.listen(socket, r));
  try {
    await vol.write(0, Buffer.alloc(1 << 20, 7));
    const seq = vol.lastSeq;
    const client = net.connect(socket);
    client.pause(); // reads nothing: the image (32 MiB) fills the socket buffers
    let closed = false;
    client.on('close', () => (closed = true));
    client.on('error', () => undefined);
    const held = () => whiteBox(vol).retention.keptPointSeqs().includes(seq);
    const start = Date.now();
    while (!held() && Date.now() - start < 5000) await sleep(10);
    assert.ok(held(), 'the export holds its point');
    // Chatter that would reset an idle timeout, for five times the stall time.
    const chatter = setInterval(() => !client.destroyed && client.write('x'), 100);
    try {
      while (!closed && Date.now() - start < 5 * stallMs + 3000) await sleep(50);
    } finally {
      clearInterval(chatter);
    }
    assert.ok(closed, 'the stalled client was cut off');
    await Promise.all(served);
    assert.ok(!held(), 'and its hold released');
  } finally {
    server.close();
    await vol.close();
  }
});
