import { ChronoError } from '../errors';
import { FrameReader } from './control-frames';
import { ControlEndpoint, connectControl, describeEndpoint } from './control-endpoint';
import { ControlReply, ControlRequest, replyError } from './control-protocol';

/**
 * Sends one request to a daemon (a Unix socket path, or TCP with TLS); `sink` receives the image
 * bytes of an export reply, unframed (control-frames.ts). A TLS handshake the server refuses
 * (wrong key, unknown identity, untrusted certificate) is ACCESS_DENIED, never retried here.
 */
export function controlCall(endpoint: ControlEndpoint, req: ControlRequest, sink?: (chunk: Buffer) => void, timeoutMs = 120_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socketPath = describeEndpoint(endpoint);
    const { sock, ready, handshaking, certificateVerdictPending } = connectControl(endpoint);
    let received = 0;
    let buf = Buffer.alloc(0);
    let reply: ControlReply | undefined;
    let remaining = 0;
    let frames: FrameReader | undefined;
    let raw = 0; // image bytes received unframed (a daemon from before frames)
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ChronoError('DAEMON', `daemon at ${socketPath} sent nothing for ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (err?: Error, value?: unknown) => {
      clearTimeout(timer);
      sock.end();
      if (err) reject(err);
      else resolve(value);
    };
    // Every export asks for frames; a daemon from before them sends raw bytes (reply.framed absent).
    const sent = req.method === 'export' ? { ...req, params: { ...req.params, frames: true } } : req;
    sock.on(ready, () => sock.write(JSON.stringify(sent) + '\n'));
    sock.on('error', (err) => {
      // A TLS alert from the server (ERR_SSL_*) is a refusal; a connection cut mid-handshake is not.
      if (handshaking() && /^ERR_SSL_/.test(String((err as NodeJS.ErrnoException).code))) finish(new ChronoError('ACCESS_DENIED', `${socketPath} refused our TLS credentials (a wrong key, an identity it does not know, or a certificate its CA did not sign): ${err.message.trim()}`, {}, err));
      else finish(new ChronoError('DAEMON', `cannot reach the daemon at ${socketPath}: ${err.message}`, {}, err));
    });
    sock.on('data', (chunk: Buffer) => {
      timer.refresh(); // the timeout is for silence: an export of a large image takes as long as it takes
      received += chunk.length;
      if (!reply) {
        buf = Buffer.concat([buf, chunk]);
        const nl = buf.indexOf(10);
        if (nl < 0) return;
        reply = JSON.parse(buf.subarray(0, nl).toString('utf8')) as ControlReply;
        chunk = buf.subarray(nl + 1);
        if (!reply.ok) return finish(replyError(reply));
        remaining = reply.length ?? 0;
        if (remaining === 0) return finish(undefined, reply.result);
      }
      if (!reply.framed) {
        const take = chunk.subarray(0, remaining - raw);
        if (take.length) sink?.(take);
        raw += take.length;
        if (raw === remaining) finish(undefined, reply.result);
        return;
      }
      frames ??= new FrameReader(remaining, (data) => sink?.(data));
      frames.push(chunk);
      if (frames.error) return finish(frames.error);
      if (frames.dataBytes === remaining) finish(undefined, reply.result);
    });
    sock.on('close', () => {
      if (handshaking()) finish(new ChronoError('DAEMON', `${socketPath} closed the connection during the TLS handshake (is it a chronovol control listener with TLS?)`));
      if (received === 0 && certificateVerdictPending()) finish(new ChronoError('ACCESS_DENIED', `${socketPath} closed the connection right after the TLS handshake without answering: it refused our client certificate (not signed by the CA it trusts?)`));
      if (!reply || (remaining > 0 && Math.max(raw, frames?.dataBytes ?? 0) < remaining)) finish(new ChronoError('DAEMON', `daemon at ${socketPath} closed the connection early`));
    });
  });
}
