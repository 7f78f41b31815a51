import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { NBD } from '../src/nbd/nbd-protocol';
import { cliJson } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { ok, run } from './helpers/fuse-harness';
import { TlsNbdClient } from './helpers/nbd-tls-client';
import { Rng } from './helpers/rng';
import { makePsk, makeX509, pskClientDir, qemuTlsArgs } from './helpers/tls-creds';
import { tmpDir } from './helpers/tmp';

const WATCHDOG_MS = 180_000;
const SIZE = 16 << 20;

function volume(): { root: string; dir: string; src: string } {
  const root = tmpDir('chronovol-tls-');
  const dir = path.join(root, 'vol');
  cliJson(['init', dir, '--size', '32M', '--segment-size', '4M']);
  const src = path.join(root, 'src.img');
  fs.writeFileSync(src, new Rng(12).bytes(SIZE));
  return { root, dir, src };
}

function accessFile(root: string, rules: Record<string, { exports: string[] | '*'; writeLive?: boolean }>): string {
  const f = path.join(root, 'access.json');
  fs.writeFileSync(f, JSON.stringify({ identities: rules }));
  return f;
}

/** qemu-img convert of `src` into the export through TLS, then back out into a file: the bytes. */
function convertThrough(args: (exp: string) => string[], src: string, out: string, exp = 'live'): Buffer {
  const [obj, objValue, , target] = args(exp);
  ok('qemu-img', ['convert', '-n', '-f', 'raw', obj, objValue, '--target-image-opts', src, target], 120_000);
  ok('qemu-img', ['convert', obj, objValue, '--image-opts', target, '-O', 'raw', out], 120_000);
  return fs.readFileSync(out);
}

test('nbd tls: TLS-PSK: qemu-img convert in and out, qemu-io read/write; wrong key, unknown identity, no TLS refused; a read-only identity gets EPERM', { timeout: WATCHDOG_MS }, async () => {
  const { root, dir, src } = volume();
  const creds = makePsk(root, ['replica', 'restore', 'audit']);
  const access = accessFile(root, { replica: { exports: '*', writeLive: true }, restore: { exports: ['live', 'past'] }, audit: { exports: ['past'] } });
  const d = await ServeDaemon.start(dir, ['--tls-psk', creds.serverFile, '--nbd-access', access], { tcp: true });
  const as = (identity: string, exp: string, dirOverride?: string) => qemuTlsArgs({ psk: { dir: dirOverride ?? creds.clientDirs[identity], identity } }, d.port!, exp);
  try {
    const back = convertThrough((exp) => as('replica', exp), src, path.join(root, 'out.img'));
    assert.ok(back.subarray(0, SIZE).equals(fs.readFileSync(src)), 'what went in through TLS comes back out through TLS');
    const w = run('qemu-io', [...as('replica', 'live'), '-c', 'write -P 0x5a 0 64k', '-c', 'read -P 0x5a 0 64k']);
    assert.equal(w.status, 0, w.stderr);
    assert.doesNotMatch(w.stdout, /Pattern verification failed/);
    const ev = cliJson<{ id: number }>(['sync', dir, '--label', 'after-psk']);
    // restore reads live and past images; its writes are refused, by qemu and by the server.
    const r = run('qemu-io', ['-r', ...as('restore', String(ev.id)), '-c', 'read -P 0x5a 0 64k']);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /Pattern verification failed/);
    const denied = run('qemu-io', [...as('restore', 'live'), '-c', 'write -P 0x11 0 4k']);
    assert.notEqual(denied.status, 0);
    assert.match(denied.stderr + denied.stdout, /Permission denied|read-only/i);
    const pskOf = (identity: string, key: Buffer) => ({ ciphers: 'TLS_AES_128_GCM_SHA256:ECDHE-PSK-CHACHA20-POLY1305', pskCallback: () => ({ identity, psk: key }) });
    const c = await TlsNbdClient.connect(d.port!, pskOf('restore', creds.keys.restore));
    const info = await c.go('live');
    assert.ok('flags' in info && (info.flags & NBD.FLAG_READ_ONLY) !== 0, 'live is read-only for restore');
    assert.equal((await c.request(NBD.CMD_WRITE, 0, 4096, Buffer.alloc(4096, 0x11))).error, NBD.EPERM);
    assert.equal((await c.request(NBD.CMD_WRITE_ZEROES, 0, 4096)).error, NBD.EPERM);
    assert.ok((await c.request(NBD.CMD_READ, 0, 4096)).data.equals(Buffer.alloc(4096, 0x5a)));
    c.close();
    // audit may read past images only: live is refused by policy.
    const a = await TlsNbdClient.connect(d.port!, pskOf('audit', creds.keys.audit));
    assert.deepEqual(await a.go('live'), { error: NBD.REP_ERR_POLICY });
    assert.ok('flags' in (await a.go(String(ev.id))));
    a.close();
    // A wrong key, an identity the server has no key for, and a client without TLS.
    const wrongKey = run('qemu-io', [...as('replica', 'live', pskClientDir(root, 'replica', randomBytes(32))), '-c', 'read 0 4k']);
    assert.notEqual(wrongKey.status, 0, 'a wrong key is refused');
    const unknown = run('qemu-io', [...as('mallory', 'live', pskClientDir(root, 'mallory', randomBytes(32))), '-c', 'read 0 4k']);
    assert.notEqual(unknown.status, 0, 'an unknown identity is refused');
    const plain = run('qemu-io', ['-f', 'raw', '-c', 'read 0 4k', d.tcpUrl('live')]);
    assert.notEqual(plain.status, 0);
    assert.match(plain.stderr, /TLS/, 'plain TCP is told TLS is required');
    // None of that disturbed the volume: the Unix socket still serves the replica's write.
    const check = run('qemu-io', ['-r', '-f', 'raw', '-c', 'read -P 0x5a 0 64k', d.url('live')]);
    assert.equal(check.status, 0, check.stderr);
    assert.doesNotMatch(check.stdout, /Pattern verification failed/);
  } finally {
    await d.stop();
  }
});

test('nbd tls: X.509: qemu-img convert and qemu-io through tls-creds-x509; a CN without rules and a certificate from another CA are refused', { timeout: WATCHDOG_MS }, async () => {
  const { root, dir, src } = volume();
  const x = makeX509(root, ['replica', 'stranger']);
  const foreign = makeX509(root, ['evil']);
  const access = accessFile(root, { replica: { exports: '*', writeLive: true } });
  const d = await ServeDaemon.start(dir, ['--tls-certs', x.serverDir, '--nbd-access', access], { tcp: true });
  const as = (cn: string, exp: string) => qemuTlsArgs({ x509: x.clientDirs[cn] }, d.port!, exp);
  try {
    const back = convertThrough((exp) => as('replica', exp), src, path.join(root, 'out.img'));
    assert.ok(back.subarray(0, SIZE).equals(fs.readFileSync(src)));
    const w = run('qemu-io', [...as('replica', 'live'), '-c', 'write -P 0x3c 1M 64k', '-c', 'read -P 0x3c 1M 64k']);
    assert.equal(w.status, 0, w.stderr);
    assert.doesNotMatch(w.stdout, /Pattern verification failed/);
    const stranger = run('qemu-io', [...as('stranger', 'live'), '-c', 'read 0 4k']);
    assert.notEqual(stranger.status, 0, 'a valid certificate whose CN has no rules is refused');
    // qemu will not present a certificate its own CA did not sign, so a raw client does.
    const pem = (d2: string, f: string) => fs.readFileSync(path.join(d2, f));
    const withCert = (clientDir: string) => ({ ca: pem(x.serverDir, 'ca-cert.pem'), cert: pem(clientDir, 'client-cert.pem'), key: pem(clientDir, 'client-key.pem') });
    const good = await TlsNbdClient.connect(d.port!, withCert(x.clientDirs.replica));
    assert.ok('flags' in (await good.go('live')), 'the raw client gets in with a certificate the CA signed');
    good.close();
    await assert.rejects(async () => {
      const c = await TlsNbdClient.connect(d.port!, withCert(foreign.clientDirs.evil));
      await c.go('live');
    }, 'a certificate from another CA is refused');
  } finally {
    await d.stop();
  }
});
