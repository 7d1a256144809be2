/**
 * The webhook endpoint of the runner host: a node:http server that takes GitHub App deliveries on one path. The
 * request is checked in order (method, content type, headers, size, signature, JSON) and refused at the first
 * problem with a short text reply; only a verified delivery reaches intake, and the reply is sent after the
 * store committed. Logs name the delivery, event, action and job; never the body, the headers or the secret.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ErrorCodes, MatchlockError, errorMessage } from '../../errors.ts';
import { mediaType, readBody, singleHeader } from './body.ts';
import { intake, type IntakeStore, type IntakeOutcome } from './intake.ts';
import { createVerifier, decodeBody, isSignatureForm, SIGNATURE_HEADER, type VerifySignature } from './verify.ts';

/** GitHub caps payloads at 25 MB. */
export const MAX_BODY_BYTES = 25 * 1024 * 1024;
const EVENT = /^[a-z_]{1,64}$/;
const DELIVERY = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_REPLY = 300;

export interface WebhookServerOptions {
  readonly secret: string;
  readonly store: IntakeStore;
  readonly log: Logger;
  readonly host?: string;
  readonly port?: number;
  readonly path?: string;
  readonly maxBodyBytes?: number;
  /** Time a client has to send its headers, and the whole request. */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
}

interface Settings { host: string; port: number; path: string; maxBodyBytes: number; headersTimeoutMs: number; requestTimeoutMs: number }

function settingsOf(o: WebhookServerOptions): Readonly<Settings> {
  const s: Settings = {
    host: o.host ?? '127.0.0.1', port: o.port ?? 0, path: o.path ?? '/webhook', maxBodyBytes: o.maxBodyBytes ?? MAX_BODY_BYTES,
    headersTimeoutMs: o.headersTimeoutMs ?? 10_000, requestTimeoutMs: o.requestTimeoutMs ?? 30_000,
  };
  const bad = (what: string): MatchlockError => new MatchlockError(ErrorCodes.WEBHOOK, `webhook server: ${what}`);
  if (!/^\/[A-Za-z0-9._~/-]*$/.test(s.path)) throw bad(`path ${JSON.stringify(s.path)} must start with / and hold only URL path characters`);
  if (!Number.isSafeInteger(s.port) || s.port < 0 || s.port > 65535) throw bad(`port ${s.port} is not 0 to 65535`);
  for (const [k, v] of [['maxBodyBytes', s.maxBodyBytes], ['headersTimeoutMs', s.headersTimeoutMs], ['requestTimeoutMs', s.requestTimeoutMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw bad(`${k} ${v} must be a positive whole number`);
  }
  if (s.headersTimeoutMs > s.requestTimeoutMs) throw bad('headersTimeoutMs must not exceed requestTimeoutMs');
  return Object.freeze(s);
}

function reply(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = `${text.length > MAX_REPLY ? `${text.slice(0, MAX_REPLY)}…` : text}\n`;
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(body);
}

export class WebhookServer {
  readonly #settings: Readonly<Settings>;
  readonly #verify: VerifySignature;
  readonly #store: IntakeStore;
  readonly #log: Logger;
  readonly #server: Server;

  constructor(opts: WebhookServerOptions) {
    this.#settings = settingsOf(opts);
    this.#verify = createVerifier(opts.secret);
    this.#store = opts.store;
    this.#log = opts.log.child({ component: 'webhook' });
    const { headersTimeoutMs, requestTimeoutMs } = this.#settings;
    this.#server = createServer({
      headersTimeout: headersTimeoutMs, requestTimeout: requestTimeoutMs, keepAliveTimeout: 5_000,
      connectionsCheckingInterval: Math.min(1_000, headersTimeoutMs),
    }, (req, res) => {
      this.#handle(req, res).catch((e: unknown) => {
        this.#log.error({ err: errorMessage(e) }, 'webhook request failed');
        if (!res.headersSent) reply(res, 500, 'internal error', { connection: 'close' });
        else res.destroy();
      });
    });
  }

  /** Starts listening; resolves with the address (port 0 picks a free one). */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#settings.port, this.#settings.host, () => {
        this.#server.off('error', reject);
        this.#log.info({ address: this.address }, 'webhook server listening');
        resolve(this.address);
      });
    });
  }

  get address(): AddressInfo {
    const a = this.#server.address();
    if (a === null || typeof a === 'string') throw new MatchlockError(ErrorCodes.WEBHOOK, 'webhook server is not listening');
    return a;
  }

  /** Stops taking connections and ends those open; resolves when the server is closed. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A refusal before the body was read closes the connection instead of reading what the client still sends.
    const refuse = (status: number, text: string, fields: Record<string, unknown> = {}, headers: Record<string, string> = {}): void => {
      this.#log.warn({ status, reason: text.slice(0, MAX_REPLY), ...fields }, 'webhook delivery refused');
      reply(res, status, text, { connection: 'close', ...headers });
    };
    if ((req.url ?? '').split('?')[0] !== this.#settings.path) return refuse(404, 'not found');
    if (req.method !== 'POST') return refuse(405, 'only POST is accepted', {}, { allow: 'POST' });
    const type = mediaType(req.headers['content-type']);
    if (type !== 'application/json') {
      return refuse(415, `the body must be application/json, not ${type ?? 'unlabelled'}: set the GitHub App's webhook content type to application/json`);
    }
    const event = singleHeader(req, 'x-github-event');
    const delivery = singleHeader(req, 'x-github-delivery');
    if (event === undefined || !EVENT.test(event)) return refuse(400, 'missing or malformed X-GitHub-Event header');
    if (delivery === undefined || !DELIVERY.test(delivery)) return refuse(400, 'missing or malformed X-GitHub-Delivery header', { event });
    const ids = { delivery, event };
    const signature = singleHeader(req, SIGNATURE_HEADER);
    if (!isSignatureForm(signature)) {
      return refuse(401, 'missing or malformed X-Hub-Signature-256 (sha256=<hex>): give the GitHub App a webhook secret, the same as matchlock\'s', ids);
    }
    const max = this.#settings.maxBodyBytes;
    const tooLarge = `the body is over ${max} bytes`;
    if (Number(req.headers['content-length'] ?? 0) > max) return refuse(413, tooLarge, ids);
    const body = await readBody(req, max);
    if (body.kind === 'aborted') return void this.#log.warn(ids, 'webhook request aborted');
    if (body.kind === 'too-large') return refuse(413, tooLarge, ids);
    const receivedAt = Date.now();
    const text = decodeBody(body.bytes);
    if (text === null) return refuse(400, 'the body is not UTF-8 JSON', ids);
    if (!(await this.#verify(text, signature))) {
      return refuse(401, 'X-Hub-Signature-256 does not match the body: check that the webhook secret matches the GitHub App\'s', ids);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return refuse(400, 'the body is not JSON', ids);
    }
    this.#answer(res, intake(this.#store, { id: delivery, event, body: parsed, receivedAt }), ids);
  }

  #answer(res: ServerResponse, out: IntakeOutcome, ids: { delivery: string; event: string }): void {
    const log = this.#log.child({ ...ids, action: out.action, job: out.job });
    if (out.status >= 500) log.error({ status: out.status, err: out.error?.message }, 'webhook delivery not recorded');
    else if (out.status >= 400) log.warn({ status: out.status, reason: out.reply.slice(0, MAX_REPLY) }, 'webhook delivery refused');
    else log.info({ status: out.status, result: out.result }, 'webhook delivery');
    reply(res, out.status, out.reply);
  }
}
