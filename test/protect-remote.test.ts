import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { test } from 'node:test';
import { controlCall } from '../src/control/control-client';
import type { ControlTlsCreds } from '../src/control/control-endpoint';
import { CLI } from './helpers/cli';
import { ServeDaemon, freePort } from './helpers/daemon';
import { isMounted, ok, run } from './helpers/fuse-harness';
import { filesIn, filesOfImage, protectWatch, qsdSkipReason, sleep, startWriter } from './helpers/protect-harness';
import { makePsk, makeX509 } from './helpers/tls-creds';
import { tmpDir } from './helpers/tmp';

/**
 * protect with the volume on "another host": everything crosses TCP on 127.0.0.1 with TLS, NBD
 * (qemu-storage-daemon's client, STARTTLS) and the control channel (--control-listen), with
 * the access rules deciding who may record events.
 */
const MiB = 1 << 20;
const SIZE = 16 * MiB;
const TARGET_TIMEOUT_MS = 2000;

/** replica may write live (mirror, events, windows); audit may read past images only. */
function accessFile(root: string): string {
  const f = path.join(root, 'access.json');
  fs.writeFileSync(f, JSON.stringify({ identities: { replica: { exports: '*', writeLive: true }, audit: { exports: ['past'] } } }));
  return f;
}

/** One identity's line of the server's PSK file: all the protected host holds. */
function clientPskFile(root: string, identity: string, key: Buffer): string {
  const f = path.join(root, `${identity}-${key.subarray(0, 3).toString('hex')}.psk`);
  fs.writeFileSync(f, `${identity}:${key.toString('hex')}\n`, { mode: 0o600 });
  return f;
}

interface Remote { nbdPort: number; controlPort: number; args: string[] }

async function remoteServeArgs(tlsArgs: string[], access: string): Promise<Remote> {
  const nbdPort = await freePort();
  const controlPort = await freePort();
  return { nbdPort, controlPort, args: ['--listen', `127.0.0.1:${nbdPort}`, '--control-listen', `127.0.0.1:${controlPort}`, ...tlsArgs, '--nbd-access', access] };
}

test('protect remote: over TCP with TLS-PSK, an application writing during the initial copy, agent sync events exact, a resync after our daemon is killed', { skip: qsdSkipReason(), timeout: 120_000 }, async () => {
  const dir = tmpDir('chronovol-protect-remote-');
  const vol = path.join(dir, 'vol');
  const prim = path.join(dir, 'prim.img');
  const appImg = path.join(dir, 'app.img');
  const mnt = path.join(dir, 'mnt');
  const state = path.join(dir, 'state');
  ok(process.execPath, [CLI, 'init', vol, '--size', String(SIZE)]);
  fs.writeFileSync(prim, Buffer.alloc(0));
  fs.truncateSync(prim, SIZE);
  ok('mkfs.ext4', ['-q', '-F', prim]);
  fs.mkdirSync(mnt);
  const creds = makePsk(dir, ['replica', 'audit']);
  const remote = await remoteServeArgs(['--tls-psk', creds.serverFile], accessFile(dir));
  const { status, waitFor, identicalFrozen } = protectWatch(state, { dir, vol, mnt, prim });
  /** A new file, then `agent sync --freeze` (to protect's local socket; protect records it over TLS): the event holds exactly the mount's files. */
  const agentEvent = (label: string, file: string, bytes: number) => {
    fs.writeFileSync(path.join(mnt, file), crypto.randomBytes(bytes));
    const files = filesIn(mnt);
    ok(process.execPath, [CLI, 'agent', 'sync', '--label', label, '--freeze', mnt, '--protect', state]);
    const image = path.join(dir, `${label}.img`);
    ok(process.execPath, [CLI, 'export', vol, '--at', label, '--out', image]);
    assert.deepEqual(filesOfImage(image, dir), files, `event ${label} holds exactly the files the mount had`);
  };
  let serve: ServeDaemon | undefined;
  let protect: ChildProcess | undefined;
  let loop: string | undefined;
  let writer: ReturnType<typeof startWriter> | undefined;
  const protectLog: string[] = [];
  try {
    // The protected host holds the replica identity's key alone.
    const psk = clientPskFile(dir, 'replica', creds.keys.replica);
    protect = spawn(process.execPath, [CLI, 'protect', `nbd://127.0.0.1:${remote.nbdPort}/live`, '--target-control', `tls://127.0.0.1:${remote.controlPort}`, '--tls-psk', psk,
      '--tls-identity', 'replica', '--primary', prim, '--app-export', `fuse:${appImg}`, '--state-dir', state, '--target-timeout', `${TARGET_TIMEOUT_MS}ms`], { stdio: ['ignore', 'pipe', 'pipe'] });
    protect.stderr!.on('data', (c: Buffer) => protectLog.push(c.toString()));
    await new Promise<void>((resolve, reject) => {
      protect!.stdout!.on('data', (c: Buffer) => c.toString().includes('protecting ') && resolve());
      protect!.once('exit', (code) => reject(new Error(`protect exited ${code}: ${protectLog.join('')}`)));
    });
    loop = ok('losetup', ['-f', '--show', appImg]).stdout.trim();
    ok('mount', [loop, mnt]);
    writer = startWriter(mnt, dir);
    await sleep(300);
    // The volume comes up after protect: the initial copy runs over TLS while the application writes.
    serve = await ServeDaemon.start(vol, remote.args);
    await waitFor('mirroring after the initial copy', (p) => p.state === 'mirroring');
    assert.equal(status().lastResync!.reason, 'initial');
    assert.ok(status().lastResync!.bytes >= SIZE);
    const attached = serve.log.join('').split('\n').filter((l) => l.includes('nbd client attached')).map((l) => JSON.parse(l) as { identity?: string; tls?: string; export: string });
    assert.ok(attached.length > 0 && attached.every((a) => a.identity === 'replica' && /^TLSv1\.[23]$/.test(a.tls ?? '')), `qemu's NBD client came in over TLS as replica: ${JSON.stringify(attached)}`);

    await writer.pause();
    agentEvent('e1', 'first', 300_000);
    identicalFrozen('primary and the replica identical');
    writer.resume();
    await sleep(400);

    // Our daemon dies while the application writes; back on the same ports, protect resyncs over TLS.
    serve.proc.kill('SIGKILL');
    await new Promise((r) => serve!.proc.once('exit', r));
    await waitFor('disconnected', (p) => p.state === 'disconnected');
    await sleep(500);
    serve = await ServeDaemon.start(vol, remote.args);
    const resynced = (await waitFor('mirroring after the resync', (p) => p.state === 'mirroring' && p.lastResync?.reason === 'resync')).lastResync!;
    assert.ok(resynced.bytes > 0 && resynced.bytes < SIZE / 2, `resync moved ${resynced.bytes} bytes`);
    await writer.pause();
    const lines = fs.readFileSync(writer.log, 'utf8').trim().split('\n');
    assert.deepEqual(lines.filter((l) => l.startsWith('ERR')), [], 'the application saw no error');
    assert.ok(Math.max(...lines.map((l) => Number(l.split(' ')[1]))) < TARGET_TIMEOUT_MS, 'no write waited longer than --target-timeout');
    agentEvent('e2', 'second', 200_000);
    identicalFrozen('primary and the replica identical after the resync');
    const entries = JSON.parse(ok(process.execPath, [CLI, 'events', state, '--json']).stdout) as Array<{ kind: string; reason?: string; label?: string }>;
    assert.deepEqual(entries.map((e) => (e.kind === 'resync' ? `window:${e.reason}` : e.label)), ['window:initial', 'e1', 'window:resync', 'e2']);
  } catch (err) {
    console.error(protectLog.join('').slice(-4000));
    throw err;
  } finally {
    await writer?.stop();
    if (isMounted(mnt)) run('umount', ['-l', mnt]);
    if (loop) run('losetup', ['-d', loop]);
    if (protect && protect.exitCode === null) {
      protect.kill('SIGTERM');
      await Promise.race([new Promise((r) => protect!.once('exit', r)), sleep(10_000)]);
      if (protect.exitCode === null) protect.kill('SIGKILL');
    }
    if (isMounted(appImg)) run('fusermount', ['-uz', appImg]);
    await serve?.stop();
  }
});

test('protect remote: a wrong PSK, an unknown identity and an identity that may not write live are refused at start with ACCESS_DENIED', { timeout: 60_000 }, async () => {
  const dir = tmpDir('chronovol-protect-refused-');
  const vol = path.join(dir, 'vol');
  const prim = path.join(dir, 'prim.img');
  ok(process.execPath, [CLI, 'init', vol, '--size', String(4 * MiB)]);
  fs.writeFileSync(prim, Buffer.alloc(4 * MiB));
  const creds = makePsk(dir, ['replica', 'audit']);
  const remote = await remoteServeArgs(['--tls-psk', creds.serverFile], accessFile(dir));
  const serve = await ServeDaemon.start(vol, remote.args);
  try {
    const cases: Array<[string, string[], RegExp]> = [
      ['a wrong key', ['--tls-psk', clientPskFile(dir, 'replica', crypto.randomBytes(32))], /refused our TLS credentials/],
      ['an identity the volume does not know', ['--tls-psk', clientPskFile(dir, 'stranger', creds.keys.replica)], /refused our TLS credentials/],
      ['an identity that may not write live', ['--tls-psk', creds.serverFile, '--tls-identity', 'audit'], /identity 'audit' may not write live/],
    ];
    for (const [what, args, why] of cases) {
      const state = path.join(dir, `state-${crypto.randomBytes(3).toString('hex')}`);
      const started = Date.now();
      const r = run(process.execPath, [CLI, 'protect', `nbd://127.0.0.1:${remote.nbdPort}/live`, '--target-control', `tls://127.0.0.1:${remote.controlPort}`, ...args, '--primary', prim, '--state-dir', state], 30_000);
      assert.equal(r.status, 1, `${what}: protect exits (${r.stderr})`);
      assert.match(r.stderr, /\[ACCESS_DENIED\]/, what);
      assert.match(r.stderr, why, what);
      assert.ok(Date.now() - started < 15_000, `${what}: refused at once, not retried`);
      assert.ok(!fs.existsSync(path.join(state, 'core-qmp.sock')), `${what}: no splitter was started (no qemu-storage-daemon needed)`);
    }
    const usage = run(process.execPath, [CLI, 'protect', `nbd://127.0.0.1:${remote.nbdPort}/live`, '--target-control', `tls://127.0.0.1:${remote.controlPort}`, '--primary', prim, '--state-dir', path.join(dir, 'st')]);
    assert.equal(usage.status, 2, 'no credentials for a remote volume is a usage error');
    assert.match(usage.stderr, /--tls-psk/);
  } finally {
    await serve.stop();
  }
});

/** A raw TCP connection: sends `data`, resolves with what came back and how long until the server closed it. */
function rawExchange(port: number, data: string | undefined, waitMs: number): Promise<{ reply: string; closedAfterMs: number | undefined }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const s = net.createConnection({ host: '127.0.0.1', port });
    let reply = '';
    const t = setTimeout(() => (s.destroy(), resolve({ reply, closedAfterMs: undefined })), waitMs);
    s.on('connect', () => data !== undefined && s.write(data));
    s.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    s.on('error', () => undefined);
    s.on('close', () => (clearTimeout(t), resolve({ reply, closedAfterMs: Date.now() - started })));
  });
}

test('control listener: TLS only (a plain client and a stalled handshake are closed), a wrong key refused, rights from --nbd-access (PSK identities and X.509 CNs)', { timeout: 60_000 }, async () => {
  const dir = tmpDir('chronovol-control-tls-');
  const vol = path.join(dir, 'vol');
  ok(process.execPath, [CLI, 'init', vol, '--size', String(4 * MiB)]);
  const creds = makePsk(dir, ['replica', 'audit']);
  const access = accessFile(dir);
  const remote = await remoteServeArgs(['--tls-psk', creds.serverFile], access);
  let serve = await ServeDaemon.start(vol, remote.args);
  const at = (tls: ControlTlsCreds | undefined) => ({ host: '127.0.0.1', port: remote.controlPort, tls });
  const psk = (identity: string, key: Buffer): ControlTlsCreds => ({ kind: 'psk', identity, key });
  const refusal = async (p: Promise<unknown>): Promise<string> => {
    try {
      await p;
    } catch (err) {
      return `${(err as { code?: string }).code}: ${(err as Error).message}`;
    }
    return 'accepted';
  };
  try {
    // A client that does not speak TLS: its request is never read, let alone answered.
    const plain = await rawExchange(remote.controlPort, JSON.stringify({ method: 'events' }) + '\n', 5000);
    assert.doesNotMatch(plain.reply, /"ok"/);
    assert.notEqual(plain.closedAfterMs, undefined, 'the plain client is closed');
    assert.match(await refusal(controlCall({ host: '127.0.0.1', port: remote.controlPort }, { method: 'ping' }, undefined, 5000)), /^DAEMON/);
    // A stalled handshake is closed by the handshake timeout.
    const stalled = await rawExchange(remote.controlPort, undefined, 12_000);
    assert.ok(stalled.closedAfterMs !== undefined && stalled.closedAfterMs >= 4000 && stalled.closedAfterMs < 11_000, `a silent client closed after ${stalled.closedAfterMs} ms`);
    // Wrong key, unknown identity: the TLS handshake fails.
    assert.match(await refusal(controlCall(at(psk('replica', crypto.randomBytes(32))), { method: 'ping' }, undefined, 5000)), /^ACCESS_DENIED: .*refused our TLS credentials/);
    assert.match(await refusal(controlCall(at(psk('stranger', creds.keys.replica)), { method: 'ping' }, undefined, 5000)), /^ACCESS_DENIED/);
    // replica writes live: it records events and windows; audit reads past images only: it reads events, changes nothing.
    const replica = at(psk('replica', creds.keys.replica));
    const audit = at(psk('audit', creds.keys.audit));
    assert.deepEqual((await controlCall(replica, { method: 'ping' }) as { rights: unknown }).rights, { read: true, write: true });
    assert.deepEqual((await controlCall(audit, { method: 'ping' }) as { rights: unknown }).rights, { read: true, write: false });
    const ev = await controlCall(replica, { method: 'sync', params: { label: 'by-replica' } }) as { label: string };
    assert.equal(ev.label, 'by-replica');
    for (const method of ['sync', 'begin-resync', 'end-resync', 'rollback', 'shutdown', 'clone', 'retention'] as const) {
      assert.match(await refusal(controlCall(audit, { method, params: { label: 'by-audit', to: 'by-replica', op: 'create', name: 'c1', at: 'by-replica' } })), /^ACCESS_DENIED: identity 'audit' may not write live/, method);
    }
    const events = await controlCall(audit, { method: 'events' }) as Array<{ label: string }>;
    assert.deepEqual(events.map((e) => e.label), ['by-replica'], 'audit reads the events; none of its requests changed anything');
    assert.deepEqual(await controlCall(audit, { method: 'windows' }), []);
    await serve.stop();

    // X.509: the client certificate's CN is the identity, with the same rules.
    const x = makeX509(dir, ['replica', 'audit']);
    const remoteX = await remoteServeArgs(['--tls-certs', x.serverDir], access);
    serve = await ServeDaemon.start(vol, remoteX.args);
    const cert = (cn: string): ControlTlsCreds => ({ kind: 'x509', ca: fs.readFileSync(path.join(x.clientDirs[cn], 'ca-cert.pem')), cert: fs.readFileSync(path.join(x.clientDirs[cn], 'client-cert.pem')), key: fs.readFileSync(path.join(x.clientDirs[cn], 'client-key.pem')) });
    const xat = (cn: string) => ({ host: '127.0.0.1', port: remoteX.controlPort, tls: cert(cn) });
    assert.equal((await controlCall(xat('replica'), { method: 'sync', params: { label: 'by-cert' } }) as { label: string }).label, 'by-cert');
    assert.match(await refusal(controlCall(xat('audit'), { method: 'sync', params: { label: 'no' } })), /^ACCESS_DENIED/);
    const other = makeX509(path.join(dir, 'other'), ['replica']); // a CA the server does not trust
    const foreign = { ...cert('replica'), cert: fs.readFileSync(path.join(other.clientDirs.replica, 'client-cert.pem')), key: fs.readFileSync(path.join(other.clientDirs.replica, 'client-key.pem')) };
    assert.match(await refusal(controlCall({ host: '127.0.0.1', port: remoteX.controlPort, tls: foreign }, { method: 'ping' }, undefined, 5000)), /^ACCESS_DENIED/);
  } finally {
    await serve.stop();
  }
});

test('protect remote: over TCP with X.509 client certificates (qemu tls-creds-x509 through the relay, tls-hostname), an event exact; a CN without writeLive refused at start', { skip: qsdSkipReason(), timeout: 60_000 }, async () => {
  const dir = tmpDir('chronovol-protect-x509-');
  const vol = path.join(dir, 'vol');
  const prim = path.join(dir, 'prim.img');
  const state = path.join(dir, 'state');
  const appSock = path.join(dir, 'app.sock');
  ok(process.execPath, [CLI, 'init', vol, '--size', String(8 * MiB)]);
  fs.writeFileSync(prim, crypto.randomBytes(8 * MiB));
  const x = makeX509(dir, ['replica', 'audit']);
  const remote = await remoteServeArgs(['--tls-certs', x.serverDir], accessFile(dir));
  const serve = await ServeDaemon.start(vol, remote.args);
  const args = (cn: string, st: string) => [CLI, 'protect', `nbd://127.0.0.1:${remote.nbdPort}/live`, '--target-control', `tls://127.0.0.1:${remote.controlPort}`, '--tls-certs', x.clientDirs[cn], '--primary', prim, '--state-dir', st];
  let protect: ChildProcess | undefined;
  const protectLog: string[] = [];
  try {
    const audit = run(process.execPath, args('audit', path.join(dir, 'st-audit')), 30_000);
    assert.equal(audit.status, 1, audit.stderr);
    assert.match(audit.stderr, /identity 'audit' may not write live.*\[ACCESS_DENIED\]/);
    protect = spawn(process.execPath, [...args('replica', state), '--app-export', `nbd:${appSock}`], { stdio: ['ignore', 'pipe', 'pipe'] });
    protect.stderr!.on('data', (c: Buffer) => protectLog.push(c.toString()));
    const deadline = Date.now() + 30_000;
    while (!(fs.existsSync(path.join(state, 'status.json')) && JSON.parse(fs.readFileSync(path.join(state, 'status.json'), 'utf8')).protection.state === 'mirroring')) {
      assert.ok(Date.now() < deadline, `watchdog: mirroring over X.509 within 30 s: ${protectLog.join('').slice(-2000)}`);
      await sleep(50);
    }
    ok('qemu-io', ['-f', 'raw', `nbd+unix:///prim?socket=${appSock}`, '-c', 'write -P 0x5a 1M 2M']);
    ok(process.execPath, [CLI, 'agent', 'sync', '--label', 'x1', '--protect', state]);
    const image = path.join(dir, 'x1.img');
    ok(process.execPath, [CLI, 'export', vol, '--at', 'x1', '--out', image]);
    assert.ok(fs.readFileSync(image).equals(fs.readFileSync(prim)), 'event x1 equals the primary');
    const attached = serve.log.join('').split('\n').filter((l) => l.includes('nbd client attached')).map((l) => JSON.parse(l) as { identity?: string });
    assert.ok(attached.length > 0 && attached.every((a) => a.identity === 'replica'), 'qemu came in with the replica certificate');
  } finally {
    if (protect && protect.exitCode === null) {
      protect.kill('SIGTERM');
      await Promise.race([new Promise((r) => protect!.once('exit', r)), sleep(10_000)]);
      if (protect.exitCode === null) protect.kill('SIGKILL');
    }
    await serve.stop();
  }
});
