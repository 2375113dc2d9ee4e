/**
 * @keyrotor/consumer: read keyrotor's rotating API keys from a mounted
 * Secret, verify and present them, and confirm what the process loaded
 * through the handshake directory (docs/wire.md).
 *
 * ```ts
 * const verifier = Verifier.open('/var/run/keyrotor/orders-api-key');
 * app.use(requireKey(verifier));
 * ```
 */

export { Verifier, Check, VerifierOptions, RETIRED_MEMORY, DEFAULT_LAST_SEEN_MS } from './verifier';
export { Presenter } from './presenter';
export { KeyStore, StoreOptions, ChangeListener, DEFAULT_POLL_MS } from './store';
export { Snapshot, Meta, Current, loadSnapshot, loadMeta } from './snapshot';
export { SecretKey, MIN_KEY_LENGTH, MAX_KEY_LENGTH } from './secret';
export { VolumeError, VolumeErrorClass, MAX_TEXT_FILE, READ_ATTEMPTS } from './volume';
export { HandshakeError } from './handshake';
export {
  requireKey,
  keyrotorOf,
  KeyrotorAuth,
  MiddlewareOptions,
  RequestLike,
  ResponseLike,
  NextFunction,
  Refusal,
  REFUSAL_HEADER,
} from './middleware';
export { WireError, WireErrorClass, Lenient, parseNumber, EXCERPT_CHARS, MAX_NUMBER } from './codec/common';
export { Instant, parseTime } from './codec/time';
export { RevisionReport } from './codec/revision';
export { Nudge } from './codec/nudge';
export { LastSeen } from './codec/last-seen';
export { Traffic } from './codec/traffic';
export * as wire from './wire';
