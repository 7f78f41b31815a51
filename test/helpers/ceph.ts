import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tmpDir } from './tmp';

const SCRIPT = path.resolve(__dirname, '../../../scripts/ceph');

export interface CephCluster {
  /** radosgw's S3 endpoint, e.g. http://127.0.0.1:27026. */
  endpoint: string;
  bucket: string;
  dir: string;
  /** Seconds from nothing to S3 answering. */
  readySeconds: number;
  stop(): void;
}

/**
 * A real single-node Ceph (scripts/ceph) in a scratch directory, its S3 credentials put into
 * this process's environment (the AWS chain; CLI children inherit them). Fails, never skips,
 * when Ceph is not installed: scripts/setup installs it.
 */
export function startCeph(): CephCluster {
  const dir = tmpDir('chronovol-ceph-');
  const stop = () => {
    spawnSync(SCRIPT, ['stop', '--dir', dir], { stdio: 'ignore', timeout: 60_000 });
  };
  process.on('exit', stop); // before tmpDir's removal: no daemon outlives the test process
  const t = process.hrtime.bigint();
  const r = spawnSync(SCRIPT, ['start', '--dir', dir], { encoding: 'utf8', timeout: 180_000 });
  const readySeconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) {
    stop();
    const logs = fs.existsSync(path.join(dir, 'log')) ? fs.readdirSync(path.join(dir, 'log')).join(', ') : 'none';
    throw new Error(`scripts/ceph start failed (${r.status ?? r.signal}): ${r.stderr}${r.error ? ` ${r.error.message}` : ''} (logs: ${logs})`);
  }
  for (const m of r.stdout.matchAll(/^export (\w+)=(.*)$/gm)) process.env[m[1]] = m[2];
  return {
    endpoint: process.env.CHRONOVOL_S3_ENDPOINT!,
    bucket: process.env.CHRONOVOL_S3_BUCKET!,
    dir,
    readySeconds,
    stop: () => {
      process.off('exit', stop);
      stop();
    },
  };
}
