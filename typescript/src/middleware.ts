/**
 * The HTTP integration: an Express/Connect-style `(req, res, next)`
 * middleware, typed structurally (Node's `http` objects, Express and
 * Connect all fit), that lets a request through only with an accepted key.
 *
 * The key comes from `Authorization: Bearer <key>` by default, or from
 * another header (`X-Api-Key: <key>`). A refusal is a 401; a retired key's
 * also carries `X-Keyrotor-Refusal: retired`, so a client that missed a
 * rotation can tell. An accepted request goes on with `req.keyrotor.version`
 * (and `res.locals.keyrotor` under Express). Nothing here logs, and no
 * response echoes the presented value.
 */

import { Check, Verifier } from './verifier';

/** The parts of an incoming request the middleware reads. */
export interface RequestLike {
  headers: Record<string, string | string[] | undefined>;
}

/** The parts of a response the middleware writes. */
export interface ResponseLike {
  statusCode: number;
  setHeader(name: string, value: string): unknown;
  end(chunk?: string): unknown;
  locals?: Record<string, unknown>;
}

export type NextFunction = (error?: unknown) => void;

/** What an accepted request carries. */
export interface KeyrotorAuth {
  /** The accepted key's version. */
  readonly version: bigint;
}

/** Why a request was refused: no key, an unknown key, or a retired one. */
export type Refusal = { readonly status: 'missing' } | Exclude<Check, { status: 'accepted' }>;

export interface MiddlewareOptions<Req extends RequestLike = RequestLike, Res extends ResponseLike = ResponseLike> {
  /** The header that carries the key: `authorization` (Bearer scheme, the default) or another, e.g. `x-api-key`. */
  header?: string;
  /** Reads the presented key another way (replaces `header`). */
  extract?: (req: Req) => string | undefined;
  /** Answers a refusal another way (it must end the response). */
  refuse?: (req: Req, res: Res, refusal: Refusal) => void;
}

/** The header a retired key's refusal carries, with value `retired`. */
export const REFUSAL_HEADER = 'X-Keyrotor-Refusal';

/** Lets a request through only with a key `verifier` accepts. */
export function requireKey<Req extends RequestLike, Res extends ResponseLike>(
  verifier: Verifier,
  options: MiddlewareOptions<Req, Res> = {},
): (req: Req, res: Res, next: NextFunction) => void {
  const header = (options.header ?? 'authorization').toLowerCase();
  const bearer = header === 'authorization';
  const extract = options.extract ?? ((req: Req) => presented(req.headers[header], bearer));
  const refuse = options.refuse ?? ((_: Req, res: Res, refusal: Refusal) => unauthorized(res, refusal, bearer));
  return (req, res, next) => {
    const value = extract(req);
    const check: Check | Refusal = value === undefined ? { status: 'missing' } : verifier.check(value);
    if (check.status !== 'accepted') return refuse(req, res, check);
    const auth: KeyrotorAuth = Object.freeze({ version: check.version });
    (req as Req & { keyrotor?: KeyrotorAuth }).keyrotor = auth;
    if (res.locals !== undefined) res.locals.keyrotor = auth;
    next();
  };
}

/** The accepted key's version of a request the middleware let through. */
export function keyrotorOf(req: object): KeyrotorAuth | undefined {
  return (req as { keyrotor?: KeyrotorAuth }).keyrotor;
}

/** The credential of a header value (one value; spaces and tabs around it ignored). */
function presented(value: string | string[] | undefined, bearer: boolean): string | undefined {
  if (typeof value !== 'string') return undefined;
  const trimmed = value.replace(/^[ \t]+|[ \t]+$/g, '');
  if (!bearer) return trimmed === '' ? undefined : trimmed;
  const m = /^([A-Za-z]+)[ ]+(.*)$/.exec(trimmed);
  if (m === null || m[1]!.toLowerCase() !== 'bearer') return undefined;
  return m[2]!.replace(/^[ \t]+/, '');
}

function unauthorized(res: ResponseLike, refusal: Refusal, bearer: boolean): void {
  res.statusCode = 401;
  res.setHeader('Content-Type', 'text/plain; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  const retired = refusal.status === 'retired';
  if (retired) res.setHeader(REFUSAL_HEADER, 'retired');
  if (bearer) {
    res.setHeader('WWW-Authenticate', refusal.status === 'missing' ? 'Bearer' : 'Bearer error="invalid_token"');
  }
  res.end(retired ? 'the key was retired: load the current one\n' : 'unauthorized\n');
}
