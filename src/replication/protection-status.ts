import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ProtectionState, Protector, ResyncReport } from './protector';

export interface ProtectionStatus {
  state: ProtectionState;
  since: string;
  /** When the target was lost, while it is (disconnected or resyncing). */
  disconnectedSince: string | null;
  /** When the target last acknowledged anything we sent it (a write reaching our log). */
  lastWriteReceived: string | null;
  /** How far the replica is behind the primary: 0 while mirroring (writes reach us before they complete). */
  lagMs: number;
  /** Bytes a resync would move now (the dirty bitmap since the last event). */
  dirtyBytes: number | null;
  lastResync: (ResyncReport & { at: string }) | null;
  targetHangsCut: number;
  rpoMs: number | null;
  lastError: string | null;
  primary: string;
  pid: number;
}

const iso = (ms: number) => (ms > 0 ? new Date(ms).toISOString() : null);

export async function protectionStatus(p: Protector, primary: string, rpoMs: number | undefined, startedMs: number): Promise<ProtectionStatus> {
  const stats = p.relayStats;
  const lagFrom = p.state === 'mirroring' ? 0 : p.lostMs || startedMs;
  return {
    state: p.state,
    since: iso(p.sinceMs)!,
    disconnectedSince: iso(p.lostMs),
    lastWriteReceived: iso(stats.lastReplyMs),
    lagMs: lagFrom ? Date.now() - lagFrom : 0,
    dirtyBytes: (await p.dirtyBytes().catch(() => undefined)) ?? null,
    lastResync: p.lastResync ? { ...p.lastResync, at: iso(p.lastResync.atMs)! } : null,
    targetHangsCut: stats.hangsCut,
    rpoMs: rpoMs ?? null,
    lastError: p.lastError ?? null,
    primary,
    pid: process.pid,
  };
}

/**
 * Writes `<state-dir>/status.json` (so `chronovol status <state-dir>` finds protect's control
 * socket, and a monitor can read it), and runs the alert command once per incident: when the lag
 * passes the RPO; re-armed once mirroring resumes.
 */
export class StatusKeeper {
  private alerted = false;

  constructor(private readonly stateDir: string, private readonly controlSocket: string, private readonly volumeDir: string | undefined, private readonly alert: string | undefined, private readonly log: Logger) {}

  update(s: ProtectionStatus): void {
    const file = path.join(this.stateDir, 'status.json');
    const body = JSON.stringify({ daemon: { controlSocket: this.controlSocket, volumeDir: this.volumeDir }, protection: s }, null, 2);
    fs.writeFileSync(file + '.tmp', body);
    fs.renameSync(file + '.tmp', file);
    if (s.state === 'mirroring') this.alerted = false;
    else if (!this.alerted && s.rpoMs !== null && s.lagMs > s.rpoMs) {
      this.alerted = true;
      this.runAlert(s);
    }
  }

  private runAlert(s: ProtectionStatus): void {
    this.log.warn({ state: s.state, lagMs: s.lagMs, rpoMs: s.rpoMs }, 'recovery point objective exceeded');
    if (!this.alert) return;
    const child = spawn('sh', ['-c', this.alert], {
      stdio: 'ignore',
      env: { ...process.env, CHRONOVOL_PROTECT_STATE: s.state, CHRONOVOL_LAG_MS: String(s.lagMs), CHRONOVOL_RPO_MS: String(s.rpoMs), CHRONOVOL_PRIMARY: s.primary, CHRONOVOL_DISCONNECTED_SINCE: s.disconnectedSince ?? '' },
    });
    child.on('error', (err) => this.log.error({ err: err.message }, 'the alert command could not run'));
    child.on('exit', (code) => code !== 0 && this.log.warn({ code }, 'the alert command failed'));
  }
}
