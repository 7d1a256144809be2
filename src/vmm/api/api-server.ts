/**
 * The API's transport: HTTP/1.1 on a Unix socket, one operation at a time (requests queue as their bodies complete),
 * bodies of at most 51200 bytes (413 beyond), JSON in and out, errors as `{"fault_message": …}`. The socket
 * path must not exist: a path in use is another VMM's, and is never taken over.
 */
import { chmodSync, existsSync, linkSync, rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError, errorMessage } from '../../errors.ts';
import { HTTP_PAYLOAD_TOO_LARGE, apiError, faultOf } from './api-error.ts';
import { dispatch } from './routes.ts';
import type { ApiReply, VmmController } from './vmm-controller.ts';

/** Firecracker's default limit on a request body. */
export const MAX_BODY_BYTES = 51200;
/** How much of an oversized body is read and dropped (so the client can read its 413) before the connection is cut. */
const MAX_DISCARD_BYTES = 1024 * 1024;

type ReadBody = { readonly text: string } | { readonly tooLarge: true };

function readBody(req: IncomingMessage): Promise<ReadBody> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) {
      resolve({ tooLarge: true });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.removeAllListeners('data');
        resolve({ tooLarge: true });
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve({ text: Buffer.concat(chunks).toString('utf8') }));
    req.on('error', reject);
  });
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch (e: unknown) {
    throw apiError(`the body is not valid JSON: ${errorMessage(e)}`);
  }
}

function send(res: ServerResponse, reply: ApiReply, close = false): void {
  const headers: Record<string, string> = close ? { connection: 'close' } : {};
  if (reply.body === undefined) {
    res.writeHead(reply.status, headers).end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) }).end(text);
}

export class ApiServer {
  readonly #server: Server;
  readonly #path: string;
  #queue: Promise<void> = Promise.resolve();

  private constructor(server: Server, path: string) {
    this.#server = server;
    this.#path = path;
  }

  /**
   * Listens on `path` (mode 0600); resolves once connections are accepted. The socket is bound and listening
   * under a temporary name first and then linked to `path`, so a client that sees the path can connect (no
   * window between bind and listen), and a path that appeared meanwhile is never taken over.
   */
  static async listen(path: string, controller: VmmController, log: Logger): Promise<ApiServer> {
    const taken = (): MatchlockError => new MatchlockError(ErrorCodes.API_SOCKET, `API socket ${path} exists: another VMM may be using it; remove it if not, or give another --api-sock`, { path });
    if (existsSync(path)) throw taken();
    const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
    let api: ApiServer | null = null;
    const server = createServer({ requestTimeout: 0, headersTimeout: 10_000 }, (req, res) => {
      api!.#handle(req, res, controller, log);
    });
    api = new ApiServer(server, path);
    rmSync(temporary, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e: Error) => reject(new MatchlockError(ErrorCodes.API_SOCKET, `cannot listen on API socket ${path}: ${e.message}`, { path }, { cause: e })));
      server.listen(temporary, () => resolve());
    });
    try {
      chmodSync(temporary, 0o600);
      linkSync(temporary, path);
    } catch (e: unknown) {
      server.close();
      if ((e as { code?: unknown }).code === 'EEXIST') throw taken();
      throw new MatchlockError(ErrorCodes.API_SOCKET, `cannot make API socket ${path}: ${errorMessage(e)}`, { path }, { cause: e });
    } finally {
      rmSync(temporary, { force: true });
    }
    return api;
  }

  /**
   * A request joins the queue once its body is in, so a client that is slow to send one holds up nobody else.
   * An oversized body is answered at once (413, and the connection closes) and the rest of it is discarded.
   */
  #handle(req: IncomingMessage, res: ServerResponse, controller: VmmController, log: Logger): void {
    const method = req.method ?? '';
    const path = req.url ?? '';
    const answer = (reply: ApiReply, close = false): void => {
      log.debug({ method, path: path.slice(0, 200), status: reply.status }, 'api request');
      if (!res.destroyed) send(res, reply, close);
    };
    readBody(req).then((read) => {
      controller.api.requests++;
      if ('tooLarge' in read) {
        controller.api.errors++;
        let discarded = 0;
        req.on('data', (chunk: Buffer) => {
          discarded += chunk.length;
          if (discarded > MAX_DISCARD_BYTES) req.destroy();
        });
        answer({ status: HTTP_PAYLOAD_TOO_LARGE, body: { fault_message: `the request body is larger than ${MAX_BODY_BYTES} bytes` } }, true);
        return;
      }
      this.#queue = this.#queue.then(async () => {
        try {
          answer(await dispatch(controller, method, path, parseJson(read.text)));
        } catch (e: unknown) {
          const fault = faultOf(e);
          controller.api.errors++;
          answer({ status: fault.status, body: { fault_message: fault.message } });
        }
      });
    }, () => req.destroy());
  }

  /** Stops accepting, ends open connections, and removes the socket file. */
  async close(): Promise<void> {
    await this.#queue;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    rmSync(this.#path, { force: true });
  }
}
