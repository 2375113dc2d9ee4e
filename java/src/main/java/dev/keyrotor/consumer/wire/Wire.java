package dev.keyrotor.consumer.wire;

/**
 * The names keyrotor and its consumers agree on (docs/wire.md): the files of a mounted
 * projected Secret, the roles, the pod annotation keys and the handshake file names.
 * Renaming anything here breaks clusters: treat it as an API.
 */
public final class Wire {
    /** kubelet's atomic-swap symlink in a mounted volume. */
    public static final String DATA_LINK = "..data";
    /** Every projected Secret: the rotation's name. */
    public static final String ROTATION_FILE = "rotation";
    /** Every projected Secret: its roles, comma-separated. */
    public static final String ROLE_FILE = "role";
    /** Every projected Secret: its revision (what reports confirm). */
    public static final String REVISION_FILE = "revision";
    /** Verifier file: the accepted versions, comma-separated. */
    public static final String ACCEPTED_FILE = "accepted";
    /** Presenter file: the current version. */
    public static final String VERSION_FILE = "version";
    /** Presenter file: the current key. */
    public static final String KEY_FILE = "key";
    /** Presenter file, optional: the user name of the current key's version (not secret). */
    public static final String USERNAME_FILE = "username";
    /** The longest user name: 1 to 63 bytes of printable ASCII without spaces. */
    public static final int MAX_USERNAME_LENGTH = 63;

    /** The role of a Secret that lists accepted versions. */
    public static final String ROLE_VERIFIER = "verifier";
    /** The role of a Secret that holds the current key. */
    public static final String ROLE_PRESENTER = "presenter";

    /** What every per-rotation pod annotation key contains. */
    public static final String POD_ANNOTATION_DOMAIN = ".keyrotor.dev/";

    /** The environment variable naming the handshake directory. */
    public static final String HANDSHAKE_DIR_ENV = "KEYROTOR_HANDSHAKE_DIR";

    private Wire() {}

    /** Verifier file holding version {@code v}'s SHA-256 digest (the default format). */
    public static String digestFile(long v) {
        return "v" + Numbers.format(v) + ".sha256";
    }

    /** Verifier file holding version {@code v}'s key ({@code verifierFormat: Plain}). */
    public static String plainKeyFile(long v) {
        return "v" + Numbers.format(v) + ".key";
    }

    /** {@code <rotation>.keyrotor.dev/<role>-revision}: a pod's revision report. */
    public static String revisionAnnotation(String rotation, String role) {
        return rotation + POD_ANNOTATION_DOMAIN + role + "-revision";
    }

    /** {@code <rotation>.keyrotor.dev/nudge}: the operator's nudge; consumers leave it alone. */
    public static String nudgeAnnotation(String rotation) {
        return rotation + POD_ANNOTATION_DOMAIN + "nudge";
    }

    /** {@code <rotation>.keyrotor.dev/last-seen}: when each version was last presented. */
    public static String lastSeenAnnotation(String rotation) {
        return rotation + POD_ANNOTATION_DOMAIN + "last-seen";
    }

    /** {@code <rotation>.keyrotor.dev/traffic}: what a verifier endpoint checked. */
    public static String trafficAnnotation(String rotation) {
        return rotation + POD_ANNOTATION_DOMAIN + "traffic";
    }

    /** The handshake file of a revision report: {@code <rotation>.<role>-revision}. */
    public static String handshakeRevisionFile(String rotation, String role) {
        return rotation + "." + role + "-revision";
    }

    /** The handshake file of a last-seen value: {@code <rotation>.last-seen}. */
    public static String handshakeLastSeenFile(String rotation) {
        return rotation + ".last-seen";
    }
}
