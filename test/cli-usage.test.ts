import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { CLI, cli } from './helpers/cli';
import { ServeDaemon } from './helpers/daemon';
import { tmpDir } from './helpers/tmp';

/** A usage error: exit 2, the stable code on stderr, and with --json the error object on stdout. */
function assertUsage(args: string[], mentions: RegExp): void {
  const r = cli([...args, '--json']);
  assert.equal(r.status, 2, `chronovol ${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
  assert.match(r.stderr, /\[BAD_USAGE\]/, args.join(' '));
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { error: { code: string; message: string } };
  assert.equal(out.error.code, 'BAD_USAGE', args.join(' '));
  assert.match(out.error.message, mentions, args.join(' '));
  assert.doesNotMatch(r.stderr, /INTERNAL|at .*\.js:\d+/, 'no crash or stack trace');
}

test('cli usage: bad options and arguments exit 2 with BAD_USAGE, for several commands', () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  // Values the option parsers reject (exit 1 with INTERNAL before: a parser's error escaped commander).
  assertUsage(['init', dir, '--size', '20X'], /--size.*20X.*not a size/);
  assertUsage(['init', dir, '--size', '1G', '--block-size', 'big'], /--block-size/);
  assertUsage(['init', dir, '--size', '1G', '--working-set', 'many'], /--working-set.*not a whole number/);
  assertUsage(['mount', dir, path.join(root, 'mnt'), '--auto-sync', 'often'], /--auto-sync.*not a duration/);
  assertUsage(['mount', dir, path.join(root, 'mnt'), '--fuse-cpu', 'fast'], /--fuse-cpu.*not a CPU/);
  assertUsage(['serve', dir, '--cache', '-1'], /--cache/);
  assertUsage(['export', dir, '--at', 'live', '--offset', '12Q'], /--offset/);
  assertUsage(['umount', root, '--timeout', 'soon'], /--timeout/);
  // What commander itself rejects.
  assertUsage(['init', dir], /required option '--size/);
  assertUsage(['sync', dir, '--no-such-option'], /unknown option/);
  assertUsage(['export', dir], /required option '--at/);
  assertUsage(['write', '--offset', '0'], /missing required argument 'dir'/);
  assertUsage(['frobnicate'], /unknown command/);
  assert.equal(fs.existsSync(dir), false, 'nothing was created');
  // Help and version are not errors.
  assert.equal(cli(['--version']).status, 0);
  assert.equal(cli(['init', '--help']).status, 0);
  assert.equal(cli(['help', 'sync']).status, 0);
});

/** The modules of this project (and pino) a CLI run loaded, from a preload that lists them at exit. */
function loadedModules(root: string, args: string[]): string[] {
  const preload = path.join(root, 'list-modules.js');
  const out = path.join(root, `modules-${args[0]}.json`);
  fs.writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(Object.keys(require.cache))));`);
  const r = spawnSync(process.execPath, ['-r', preload, CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, `chronovol ${args.join(' ')}: ${r.stderr}`);
  return (JSON.parse(fs.readFileSync(out, 'utf8')) as string[]).filter((m) => !m.includes('node_modules/commander'));
}

test('cli loading: a command a daemon answers loads neither the engine nor pino nor FUSE', async () => {
  const root = tmpDir();
  const dir = path.join(root, 'vol');
  assert.equal(cli(['init', dir, '--size', '4M', '--segment-size', '256K']).status, 0);
  // The engine proper: finding a daemon may read the volume's LOCK (volume-dir.js and what it
  // needs: format/, storage/), but opens nothing else.
  const heavy = (mods: string[]) => mods.filter((m) => /[\\/]volume[\\/](?!volume-dir\.js$)|[\\/](fuse|nbd|archive|index|segment)[\\/]|[\\/]pino[\\/]|fuse-native|[\\/]log\.js$/.test(m));
  assert.deepEqual(heavy(loadedModules(root, ['--version'])), []);
  const daemon = await ServeDaemon.start(dir);
  try {
    // Through the daemon's control socket: what `chronovol sync <mountpoint>` does, too.
    const mods = loadedModules(root, ['sync', dir, '--label', 'light']);
    assert.deepEqual(heavy(mods), []);
    assert.ok(mods.some((m) => /control-client\.js$/.test(m)), 'the sync went through the daemon');
  } finally {
    await daemon.stop();
  }
  // Without a daemon the same command opens the volume itself, and so loads the engine.
  assert.ok(loadedModules(root, ['events', dir]).some((m) => /volume[\\/]volume\.js$/.test(m)));
});
