import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import { tmpDir } from './tmp';

/** Small parts and threshold, so tests cross the multipart threshold cheaply; quick retries. */
export const S3_TEST_TUNING = { multipartThresholdBytes: 5 << 20, partSizeBytes: 5 << 20, retry: { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 100 }, idleTimeoutMs: 1500 };

export interface S3Server {
  endpoint: string;
  port: number;
  bucket: string;
  /** Where s3rver keeps objects: tests read the stored bytes behind the server's back. */
  directory: string;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would (an outage); start again on `directory` and `port` to bring it back. */
  kill(): Promise<void>;
}

/**
 * A real S3 server (s3rver) on a random loopback port, in a child process, with one bucket.
 * Credentials go through the AWS chain like anyone's: this process's environment, inherited by
 * CLI children.
 */
export async function startS3Server(bucket = 'chronovol-test', o: { directory?: string; port?: number } = {}): Promise<S3Server> {
  process.env.AWS_ACCESS_KEY_ID = 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY = 'S3RVER';
  process.env.AWS_EC2_METADATA_DISABLED = 'true';
  const directory = o.directory ?? tmpDir('chronovol-s3rver-');
  // s3rver makes ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy
  // provider: without it, every listing longer than a page fails with a 500.
  // No stdio is inherited: a server left running by a failed test must not hold the test
  // runner's pipes (the runner waits for them to close, so CI would hang). Its stdin is its
  // lifeline: it exits when this process goes, however this process goes.
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', path.join(__dirname, 's3rver-child.js'), directory, bucket, ...(o.port ? [String(o.port)] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code}) before listening: ${stderr}`)));
  });
  // Once listening, the idle server does not keep this process alive: a test that fails before
  // stopping it ends its file at once (and 'exit' kills the server) instead of at the timeout.
  const hold = (on: boolean) => {
    for (const h of [child, child.stdin, child.stdout, child.stderr] as Array<{ ref(): void; unref(): void } | null>) {
      if (h) on ? h.ref() : h.unref();
    }
  };
  hold(false);
  const end = async (signal: NodeJS.Signals) => {
    process.off('exit', kill);
    if (child.exitCode !== null || child.signalCode !== null) return;
    hold(true);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket,
    directory,
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}
