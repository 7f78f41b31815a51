#!/usr/bin/env node
import { Command } from 'commander';
import { ChronoError } from '../errors';
import { exitCodeFor } from './output';
import * as diff from './commands/diff';
import * as events from './commands/events';
import * as exportCmd from './commands/export';
import * as history from './commands/history';
import * as importCmd from './commands/import';
import * as importLog from './commands/import-log';
import * as init from './commands/init';
import * as mount from './commands/mount';
import * as umount from './commands/umount';
import * as recover from './commands/recover';
import * as serve from './commands/serve';
import * as status from './commands/status';
import * as sync from './commands/sync';
import * as verify from './commands/verify';
import * as write from './commands/write';

const program = new Command();
program
  .name('chronovol')
  .description('Every past state of a block volume, kept and served as files and over NBD.')
  .version(require('../../../package.json').version)
  .showHelpAfterError()
  .addHelpText('after', `
Points in time (for --at and export): 'live', an event id or label, seq:<n>, or an ISO-8601 time.

Quick tour:
  chronovol init /srv/vol --size 1G
  chronovol import /srv/vol disk.img --label first
  chronovol events /srv/vol
  chronovol export /srv/vol --at first --out first.img`);

for (const cmd of [init, importCmd, importLog, write, sync, events, exportCmd, diff, history, status, verify, recover, mount, umount, serve]) cmd.register(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  const json = process.argv.includes('--json');
  const e = err instanceof ChronoError ? err : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(JSON.stringify({ error: { code: e?.code ?? 'INTERNAL', message } }) + '\n');
  process.stderr.write(`chronovol: ${message}${e ? ` [${e.code}]` : ''}\n`);
  if (!e && process.env.CHRONOVOL_DEBUG) console.error(err);
  process.exit(exitCodeFor(err));
});
