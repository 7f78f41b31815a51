/**
 * Runs s3rver (a real S3 server) in its own process, so that tests may block on a CLI child
 * (spawnSync) while it serves. argv: <directory> <bucket> [port]. Prints {"port": n} once listening.
 */
// eslint-disable-next-line @typescript-eslint/no-var-requires
const S3rver = require('s3rver');

const [directory, bucket, port] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port ?? 0), silent: true, directory, configureBuckets: [{ name: bucket }] });
server.run().then((addr: { port: number }) => {
  process.stdout.write(`${JSON.stringify({ port: addr.port })}\n`);
});
// The parent holds our stdin open: when it ends, the parent is gone (even SIGKILLed), and a server
// nobody can stop must not outlive it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
process.on('SIGTERM', () => {
  server.close().finally(() => process.exit(0));
});
