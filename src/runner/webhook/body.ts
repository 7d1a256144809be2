/** Reading a request body up to a limit: past it, nothing more is kept and the caller refuses the request. */
import type { IncomingMessage } from 'node:http';

export type BodyResult = { readonly kind: 'body'; readonly bytes: Buffer } | { readonly kind: 'too-large' } | { readonly kind: 'aborted' };

export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (r: BodyResult): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onAbort);
      resolve(r);
    };
    const onData = (c: Buffer): void => {
      size += c.length;
      if (size > limit) {
        chunks.length = 0;
        req.pause();
        done({ kind: 'too-large' });
        return;
      }
      chunks.push(c);
    };
    const onEnd = (): void => done({ kind: 'body', bytes: Buffer.concat(chunks, size) });
    const onAbort = (): void => done({ kind: 'aborted' });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onAbort);
  });
}

/** The media type of a Content-Type header, lowercase, without parameters. */
export function mediaType(header: string | undefined): string | null {
  const type = header?.split(';')[0]?.trim().toLowerCase();
  return type === undefined || type === '' ? null : type;
}

/** A header given exactly once (Node joins repeated custom headers with ", "). */
export function singleHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' ? v : undefined;
}
