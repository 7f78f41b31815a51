import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { NBD, MAX_REQUEST_BYTES } from '../src/nbd/nbd-protocol';
import { DEFAULTS } from '../src/options';
import { SocketReader } from '../src/nbd/socket-reader';
import { cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { run } from './helpers/fuse-harness';
import { Rng, withSeed } from './helpers/rng';
import { makePsk, qemuTlsArgs } from './helpers/tls-creds';
import { tmpDir } from './helpers/tmp';

const WATCHDOG_MS = 240_000;
const SIZE = 16 << 20;
/** Connections the fuzz opens; CI runs the fixed seed below (CHRONOVOL_SEED replays another). */
const UNIX_CONNECTIONS = 2000;
const TCP_CONNECTIONS = 300;
const PARALLEL = 16;
const FIXED_SEED = 20261201;

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
}

function option(rng: Rng, code: number, data: Buffer, length = data.length): Buffer {
  const h = Buffer.alloc(16);
  h.writeBigUInt64BE(rng.bool(0.97) ? NBD.OPTS_MAGIC : BigInt.asUintN(64, BigInt(rng.int(2 ** 32)) << 20n), 0);
  h.writeUInt32BE(code >>> 0, 8);
  h.writeUInt32BE(length >>> 0, 12);
  return Buffer.concat([h, data]);
}

function pick<T>(rng: Rng, xs: T[]): T {
  return xs[rng.int(xs.length)];
}

/** GO/INFO payloads with name lengths and info counts at and past their limits. */
function goData(rng: Rng, name: string): Buffer {
  const n = Buffer.from(name);
  const nameLen = pick(rng, [n.length, n.length, 0, n.length + 1, 0xffffffff, rng.int(70000)]);
  const nInfo = pick(rng, [0, 1, 3, 0xffff, rng.int(10)]);
  const infos = Buffer.alloc(2 * Math.min(nInfo, rng.int(5)));
  for (let i = 0; i < infos.length; i += 2) infos.writeUInt16BE(rng.int(5), i);
  const b = Buffer.concat([u32(nameLen), n, Buffer.from([nInfo >> 8, nInfo & 0xff]), infos]);
  return rng.bool(0.1) ? b.subarray(0, rng.int(b.length)) : b;
}

/** One connection's bytes: garbage, option haggling gone wrong, or requests at the limits. */
function scenario(rng: Rng, tlsRequired: boolean): Buffer {
  const parts: Buffer[] = [];
  const kind = rng.int(10);
  if (kind === 0) return rng.bytes(rng.int(100));
  parts.push(u32(pick(rng, [NBD.FLAG_C_FIXED_NEWSTYLE | NBD.FLAG_C_NO_ZEROES, NBD.FLAG_C_FIXED_NEWSTYLE, 0, 4, rng.int(2 ** 32)])));
  const exportName = pick(rng, ['live', '', 'first', '1', 'seq:1', 'nope', 'at/2000-01-01T00:00:00Z', 'x'.repeat(rng.int(300))]);
  const options = 1 + rng.int(5);
  for (let i = 0; i < options; i++) {
    const code = pick(rng, [NBD.OPT_LIST, NBD.OPT_INFO, NBD.OPT_GO, NBD.OPT_STARTTLS, NBD.OPT_ABORT, NBD.OPT_EXPORT_NAME, 8, 9, 10, 0, 999, 2 ** 31, rng.int(2 ** 32)]);
    const data = code === NBD.OPT_GO || code === NBD.OPT_INFO ? goData(rng, exportName) : code === NBD.OPT_EXPORT_NAME ? Buffer.from(exportName) : rng.bytes(pick(rng, [0, 0, 1, 4, rng.int(200)]));
    // Declared lengths at the limits: the cap, one past it, the largest, or a lie about the data.
    const length = rng.bool(0.85) ? data.length : pick(rng, [64 * 1024, 64 * 1024 + 1, 0xffffffff, data.length + 1 + rng.int(100)]);
    parts.push(option(rng, code, data.subarray(0, Math.min(data.length, length)), length));
    if (length !== data.length) return Buffer.concat(parts);
    if (code === NBD.OPT_STARTTLS && tlsRequired) {
      parts.push(rng.bytes(rng.int(300))); // not a ClientHello
      return Buffer.concat(parts);
    }
  }
  if (kind < 4 || tlsRequired) return Buffer.concat(parts);
  // Transmission: a good GO for live, then requests at the limits.
  const n = Buffer.from('live');
  parts.push(option(rng, NBD.OPT_GO, Buffer.concat([u32(n.length), n, Buffer.alloc(2)])));
  const requests = 1 + rng.int(8);
  for (let i = 0; i < requests; i++) {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(rng.bool(0.95) ? NBD.REQUEST_MAGIC : rng.int(2 ** 32), 0);
    h.writeUInt16BE(rng.bool(0.8) ? 0 : rng.int(0x10000), 4);
    const type = pick(rng, [NBD.CMD_READ, NBD.CMD_WRITE, NBD.CMD_FLUSH, NBD.CMD_TRIM, NBD.CMD_WRITE_ZEROES, NBD.CMD_DISC, 5, 7, rng.int(0x10000)]);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(BigInt(i), 8);
    const offset = pick(rng, [0n, BigInt(SIZE - 4096), BigInt(SIZE), BigInt(SIZE + 1), 1n << 63n, (1n << 64n) - 1n, BigInt(rng.int(SIZE))]);
    h.writeBigUInt64BE(offset, 16);
    const length = pick(rng, [0, 1, 512, 4096, 65536, MAX_REQUEST_BYTES, MAX_REQUEST_BYTES + 1, 0xffffffff, rng.int(20000)]);
    h.writeUInt32BE(length >>> 0, 24);
    parts.push(h);
    if (type === NBD.CMD_WRITE) {
      const sent = Math.min(length, rng.bool(0.8) ? 65536 : rng.int(8192));
      parts.push(rng.bytes(Math.min(sent, 2048)), Buffer.alloc(Math.max(0, sent - 2048), rng.int(256)));
      if (sent < length) break; // the rest never comes
    }
    if (type === NBD.CMD_DISC) break;
  }
  return Buffer.concat(parts);
}

/** Sends the bytes, half-closes, reads whatever comes, and resolves when the server has closed. */
function poke(to: net.NetConnectOpts, bytes: Buffer): Promise<'closed' | 'hung'> {
  return new Promise((resolve) => {
    const s = net.createConnection(to);
    const t = setTimeout(() => (s.destroy(), resolve('hung')), 30_000);
    s.on('error', () => undefined);
    s.on('data', () => undefined);
    s.once('connect', () => {
      s.write(bytes);
      s.end();
    });
    s.once('close', () => (clearTimeout(t), resolve('closed')));
  });
}

async function fuzz(rng: Rng, count: number, to: net.NetConnectOpts, tlsRequired: boolean): Promise<void> {
  let next = 0;
  const hung: number[] = [];
  const worker = async () => {
    while (next < count) {
      const i = next++;
      if ((await poke(to, scenario(rng, tlsRequired))) === 'hung') hung.push(i);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  assert.deepEqual(hung, [], 'every fuzzed connection was closed by the server');
}

/** Connects and waits for the server's hello; resolves false if the server closed instead. */
async function hello(to: net.NetConnectOpts): Promise<{ sock: net.Socket; greeted: boolean }> {
  const sock = net.createConnection(to);
  sock.on('error', () => undefined);
  const reader = new SocketReader(sock);
  const greeted = await reader.read(18).then((b) => b.readBigUInt64BE(0) === NBD.INIT_MAGIC, () => false);
  return { sock, greeted };
}

function closedBy(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => (sock.destroyed || sock.readableEnded ? resolve() : sock.once('close', () => resolve())));
}

test('nbd fuzz: thousands of connections of garbage, bad options, lengths at the limits, cut-off requests, over the Unix socket and TLS-only TCP; the server then serves correctly', { timeout: WATCHDOG_MS }, async () => {
  const rng = process.env.CHRONOVOL_SEED ? Rng.fromEnv() : new Rng(FIXED_SEED);
  console.log(`nbd fuzz seed ${rng.seed} (CHRONOVOL_SEED=${rng.seed} replays it)`);
  const root = tmpDir('chronovol-fuzz-');
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', '16M', '--segment-size', '4M']);
  cliJson(['sync', dir, '--label', 'first']);
  const creds = makePsk(root, ['replica']);
  const d = await ServeDaemon.start(dir, ['--tls-psk', creds.serverFile], { tcp: true });
  try {
    await withSeed(rng, async () => {
      await fuzz(rng, UNIX_CONNECTIONS, { path: d.socket }, false);
      await fuzz(rng, TCP_CONNECTIONS, { port: d.port!, host: '127.0.0.1' }, true);
    });
    assert.equal(d.proc.exitCode, null, 'the server is still running');
    // It still serves: a pattern in and out over the Unix socket and over TLS.
    const w = run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x7e 4M 1M', '-c', 'flush', d.url('live')]);
    assert.equal(w.status, 0, w.stderr);
    const r = run('qemu-io', ['-r', ...qemuTlsArgs({ psk: { dir: creds.clientDirs.replica, identity: 'replica' } }, d.port!, 'live'), '-c', 'read -P 0x7e 4M 1M']);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    // No connection was left counted: the cap admits exactly its number again.
    const held: net.Socket[] = [];
    for (let i = 0; i < DEFAULTS.nbdMaxConnections; i++) {
      const h = await hello({ path: d.socket });
      assert.ok(h.greeted, `connection ${i} of ${DEFAULTS.nbdMaxConnections} is greeted`);
      held.push(h.sock);
    }
    const over = await hello({ path: d.socket });
    assert.equal(over.greeted, false, 'one more than the cap is closed without a hello');
    for (const s of held) s.destroy();
    await Promise.all(held.map(closedBy));
  } finally {
    await d.stop();
  }
  const v = cliJson<{ ok: boolean }>(['verify', dir]);
  assert.equal(v.ok, true);
});

test('nbd fuzz: a stalled handshake is closed: silent after the hello, half an option, silent inside TLS', { timeout: WATCHDOG_MS }, async () => {
  const root = tmpDir('chronovol-stall-');
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', '16M', '--segment-size', '4M']);
  const creds = makePsk(root, ['replica']);
  const d = await ServeDaemon.start(dir, ['--tls-psk', creds.serverFile], { tcp: true });
  try {
    const silent = await hello({ path: d.socket });
    const half = await hello({ path: d.socket });
    half.sock.write(Buffer.concat([u32(NBD.FLAG_C_FIXED_NEWSTYLE), Buffer.alloc(7)]));
    const inTls = await hello({ port: d.port!, host: '127.0.0.1' });
    inTls.sock.write(Buffer.concat([u32(NBD.FLAG_C_FIXED_NEWSTYLE), option(new Rng(1), NBD.OPT_STARTTLS, Buffer.alloc(0))]));
    // The server closes each one itself (the handshake timeout is a few seconds; the test's
    // watchdog is minutes, so this is not a timing assertion).
    await Promise.all([silent, half, inTls].map((h) => closedBy(h.sock)));
    assert.ok(d.log.join('').includes('handshake not finished in time'));
    // A client that finishes its handshake is not closed by that timer.
    const w = run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 64k', '-c', 'sleep 7000', '-c', 'read -P 0x11 0 64k', d.url('live')], 60_000);
    assert.equal(w.status, 0, w.stderr);
    assert.doesNotMatch(w.stdout, /Pattern verification failed/);
  } finally {
    await d.stop();
  }
});
