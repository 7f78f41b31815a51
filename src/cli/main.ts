#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { ChronoError } from '../errors';
import { exitCodeFor } from '../service/edge-errors';

type CommandModule = { register(program: Command): void };

/**
 * One file per command; each declares its options in `register` and loads what its action needs
 * only when that action runs. Only the named command's file is loaded (all of them for help or
 * an unknown name), so `chronovol sync <mnt>` loads neither the engine, nor pino, nor FUSE, nor
 * the other commands: a CLI sync to a mount is mostly Node's own start-up.
 */
const COMMANDS: Array<[string, () => CommandModule]> = [
  ['init', () => require('./commands/init')],
  ['import', () => require('./commands/import')],
  ['import-log', () => require('./commands/import-log')],
  ['write', () => require('./commands/write')],
  ['sync', () => require('./commands/sync')],
  ['events', () => require('./commands/events')],
  ['export', () => require('./commands/export')],
  ['diff', () => require('./commands/diff')],
  ['history', () => require('./commands/history')],
  ['status', () => require('./commands/status')],
  ['verify', () => require('./commands/verify')],
  ['recover', () => require('./commands/recover')],
  ['mount', () => require('./commands/mount')],
  ['umount', () => require('./commands/umount')],
  ['serve', () => require('./commands/serve')],
  ['clone', () => require('./commands/clone')],
  ['protect', () => require('./commands/protect')],
  ['agent', () => require('./commands/agent')],
  ['restore', () => require('./commands/restore')],
  ['rollback', () => require('./commands/rollback')],
  ['timeline', () => require('./commands/timeline')],
  ['bisect', () => require('./commands/bisect')],
  ['pin', () => require('./commands/pin')],
  ['unpin', () => require('./commands/unpin')],
  ['forget', () => require('./commands/forget')],
  ['prune', () => require('./commands/prune')],
];

const program = new Command();
program
  .name('chronovol')
  .description('Every past state of a block volume, kept and served as files and over NBD.')
  .version(require('../../../package.json').version)
  // Usage errors reach the handler below (exit 2, a stable code, JSON with --json).
  .exitOverride()
  .configureOutput({ outputError: (text, write) => write(`chronovol: ${text.trim().replace(/^error: /, '')} [BAD_USAGE]\n`) })
  .showHelpAfterError()
  .option('--allow-group-access', "let the volume directory's group read it: open accepts 0750 and files are created 0640 (default: 0700/0600, and open refuses more)")
  .hook('preAction', (cmd) => {
    if (cmd.opts().allowGroupAccess) (require('../volume/dir-permissions') as typeof import('../volume/dir-permissions')).allowGroupAccess();
  })
  .addHelpText('after', `
Points in time (for --at and export): 'live', an event id or label, seq:<n>, or an ISO-8601 time.

Quick tour:
  chronovol init /srv/vol --size 1G
  chronovol import /srv/vol disk.img --label first
  chronovol events /srv/vol
  chronovol export /srv/vol --at first --out first.img`);

// The program itself takes no option with a value, so the first word that is not an option
// names the command.
const args = process.argv.slice(2);
const named = COMMANDS.find(([name]) => name === args.find((a) => !a.startsWith('-')));
const versionOnly = !named && args.some((a) => a === '-V' || a === '--version');
for (const [, load] of named ? [named] : versionOnly ? [] : COMMANDS) load().register(program);
reportParseErrorsAsUsage(program);

/**
 * Commander reports a value its parser rejects only if the parser throws its own
 * InvalidArgumentError (anything else escapes as a crash). The parsers (src/options.ts and the
 * commands' own) throw ChronoErrors; this turns every parser's error into commander's, so the
 * message names the option and the outcome is a usage error like any other.
 */
function reportParseErrorsAsUsage(cmd: Command): void {
  const wrap = <T extends { parseArg?: (value: string, previous: unknown) => unknown }>(o: T) => {
    const parse = o.parseArg;
    if (!parse) return;
    o.parseArg = (value: string, previous: unknown) => {
      try {
        return parse(value, previous);
      } catch (err) {
        throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
      }
    };
  };
  cmd.options.forEach(wrap);
  cmd.registeredArguments.forEach(wrap);
  cmd.commands.forEach(reportParseErrorsAsUsage);
}

program.parseAsync(process.argv).catch((err: unknown) => {
  const json = process.argv.includes('--json');
  if (err instanceof CommanderError) {
    // --help and --version end here too, with exit code 0; commander has printed the rest.
    if (err.exitCode === 0) process.exit(0);
    if (json) process.stdout.write(JSON.stringify({ error: { code: 'BAD_USAGE', message: err.message.replace(/^error: /, '') } }) + '\n');
    process.exit(exitCodeFor(new ChronoError('BAD_USAGE', err.message)));
  }
  const e = err instanceof ChronoError ? err : undefined;
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(JSON.stringify({ error: { code: e?.code ?? 'INTERNAL', message } }) + '\n');
  process.stderr.write(`chronovol: ${message}${e ? ` [${e.code}]` : ''}\n`);
  if (!e && process.env.CHRONOVOL_DEBUG) console.error(err);
  process.exit(exitCodeFor(err));
});
