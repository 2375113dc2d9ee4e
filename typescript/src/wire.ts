/**
 * The names of the wire contract (docs/wire.md) a consumer uses: the files
 * of a mounted projected Secret, the roles, the pod annotation keys and the
 * handshake file names. Renaming any of them breaks clusters: treat them as
 * an API.
 */

/** kubelet's atomic-swap symlink in a mounted Secret. */
export const DATA_LINK = '..data';

export const ROTATION_FILE = 'rotation';
export const ROLE_FILE = 'role';
export const REVISION_FILE = 'revision';
export const ACCEPTED_FILE = 'accepted';
export const VERSION_FILE = 'version';
export const KEY_FILE = 'key';
/** Optional, beside `key`: the user name of the key's version (not secret). */
export const USERNAME_FILE = 'username';
/** A user name is 1 to 63 bytes of printable ASCII without spaces. */
export const MAX_USERNAME_LENGTH = 63;

export const ROLE_VERIFIER = 'verifier';
export const ROLE_PRESENTER = 'presenter';

/** The environment variable naming the handshake directory. */
export const HANDSHAKE_DIR_ENV = 'KEYROTOR_HANDSHAKE_DIR';

/** The domain part every per-rotation pod annotation shares. */
export const POD_ANNOTATION_DOMAIN = '.keyrotor.dev/';

/** Verifier file holding version `v`'s SHA-256 digest (the default format). */
export function digestFile(v: bigint): string {
  return `v${v}.sha256`;
}

/** Verifier file holding version `v`'s key (`verifierFormat: Plain`). */
export function plainKeyFile(v: bigint): string {
  return `v${v}.key`;
}

/** `<rotation>.keyrotor.dev/<role>-revision`: the revision report's key. */
export function reportAnnotation(rotation: string, role: string): string {
  return `${rotation}${POD_ANNOTATION_DOMAIN}${role}-revision`;
}

/** `<rotation>.keyrotor.dev/nudge`. */
export function nudgeAnnotation(rotation: string): string {
  return `${rotation}${POD_ANNOTATION_DOMAIN}nudge`;
}

/** `<rotation>.keyrotor.dev/last-seen`. */
export function lastSeenAnnotation(rotation: string): string {
  return `${rotation}${POD_ANNOTATION_DOMAIN}last-seen`;
}

/** `<rotation>.keyrotor.dev/traffic`. */
export function trafficAnnotation(rotation: string): string {
  return `${rotation}${POD_ANNOTATION_DOMAIN}traffic`;
}

/** The handshake file holding the revision report of `rotation` and `role`. */
export function handshakeRevisionFile(rotation: string, role: string): string {
  return `${rotation}.${role}-revision`;
}

/** The handshake file holding `rotation`'s last-seen value. */
export function handshakeLastSeenFile(rotation: string): string {
  return `${rotation}.last-seen`;
}
