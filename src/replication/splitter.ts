import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ChronoError } from '../errors';
import { QmpClient } from './qmp-client';

/** How the application reaches the primary: a FUSE file (a loop device or a VM opens it), or NBD. */
export type AppExport = { kind: 'fuse'; path: string } | { kind: 'nbd'; socket: string };

export interface SplitterOptions {
  primary: string;
  appExport?: AppExport;
  stateDir: string;
  /** `--object` arguments for the core daemon (the TLS credentials of its NBD client). */
  objects?: string[];
  /** qemu-storage-daemon's path (tests and odd installs); default from PATH. */
  qsdBinary?: string;
  onExit: (which: 'core' | 'app', code: number | null, stderr: string) => void;
}

/**
 * The splitter: two qemu-storage-daemons (docs/REPLICATION.md, "Layout"). The core daemon opens
 * the primary (`prim-file`, `prim` on it), serves it over NBD and runs the mirror into us. The
 * app daemon, for a FUSE export, takes that NBD export as its node: a writable FUSE export holds
 * the node's resize permission for good, which the mirror needs, so the two cannot share a daemon.
 * We are never in the application's I/O path: if we die, both daemons go on.
 */
export class Splitter {
  core!: QmpClient;
  private app?: QmpClient;
  private readonly children: ChildProcess[] = [];
  private stopping = false;

  constructor(private readonly o: SplitterOptions) {}

  get coreNbdSocket(): string {
    return this.o.appExport?.kind === 'nbd' ? path.resolve(this.o.appExport.socket) : path.join(this.o.stateDir, 'core-nbd.sock');
  }

  async start(): Promise<void> {
    const { primary, stateDir } = this.o;
    const stat = fs.statSync(primary);
    const driver = stat.isBlockDevice() ? 'host_device' : 'file';
    const coreQmp = path.join(stateDir, 'core-qmp.sock');
    for (const s of [coreQmp, this.coreNbdSocket]) fs.rmSync(s, { force: true });
    this.spawn('core', [
      ...(this.o.objects ?? []).flatMap((obj) => ['--object', obj]),
      '--blockdev', JSON.stringify({ driver, 'node-name': 'prim-file', filename: path.resolve(primary), aio: 'threads' }),
      '--blockdev', JSON.stringify({ driver: 'raw', 'node-name': 'prim', file: 'prim-file' }),
      '--nbd-server', `addr.type=unix,addr.path=${this.coreNbdSocket}`,
      '--export', 'type=nbd,id=prim-exp,node-name=prim,name=prim,writable=on',
      '--chardev', `socket,id=qmp0,path=${coreQmp},server=on,wait=off`, '--monitor', 'chardev=qmp0',
    ]);
    this.core = await QmpClient.connect(coreQmp);
    if (this.o.appExport?.kind !== 'fuse') return;
    const mountpoint = path.resolve(this.o.appExport.path);
    if (!fs.existsSync(mountpoint)) fs.writeFileSync(mountpoint, ''); // a FUSE export mounts over a regular file
    const appQmp = path.join(stateDir, 'app-qmp.sock');
    fs.rmSync(appQmp, { force: true });
    this.spawn('app', [
      '--blockdev', JSON.stringify({ driver: 'nbd', 'node-name': 'app', server: { type: 'unix', path: this.coreNbdSocket }, export: 'prim' }),
      '--export', `type=fuse,id=app-exp,node-name=app,mountpoint=${mountpoint},writable=on`,
      '--chardev', `socket,id=qmp0,path=${appQmp},server=on,wait=off`, '--monitor', 'chardev=qmp0',
    ]);
    this.app = await QmpClient.connect(appQmp);
  }

  private spawn(which: 'core' | 'app', args: string[]): void {
    // Its own process group: a Ctrl-C meant for protect must not take the application's I/O path down.
    const child = spawn(this.o.qsdBinary ?? 'qemu-storage-daemon', args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString('utf8')).slice(-4000)));
    child.on('error', (err) => {
      stderr += err.message;
    });
    child.on('exit', (code) => {
      if (!this.stopping) this.o.onExit(which, code, stderr.trim());
    });
    this.children.push(child);
  }

  /** Stops the app daemon first (its FUSE mount goes), then the core one; waits for both. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const [qmp, child] of [[this.app, this.children[1]], [this.core, this.children[0]]] as const) {
      if (!child || child.exitCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
      await qmp?.execute('quit').catch(() => undefined);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
      qmp?.close();
    }
  }
}

export function parseAppExport(text: string): AppExport {
  const m = /^(fuse|nbd):(.+)$/.exec(text);
  if (!m) throw new ChronoError('BAD_USAGE', `--app-export takes fuse:PATH or nbd:SOCKET, got '${text}'`);
  return m[1] === 'fuse' ? { kind: 'fuse', path: m[2] } : { kind: 'nbd', socket: m[2] };
}
