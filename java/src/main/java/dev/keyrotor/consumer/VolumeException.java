package dev.keyrotor.consumer;

import java.io.IOException;
import java.nio.file.Path;

/**
 * Why a mounted Secret could not be read: one of the four error classes of docs/wire.md,
 * the file, and a reason. The message names the file and the reason, never the file's
 * content.
 */
public final class VolumeException extends IOException {
    private static final long serialVersionUID = 1L;

    /** The language-neutral error classes of docs/wire.md. */
    public enum Kind {
        /** A required file does not exist (also: nothing at the mount point, {@code ..data} dangling). */
        MISSING("missing"),
        /** A file breaks its grammar or its cap, or is not UTF-8 where text is required. */
        MALFORMED("malformed"),
        /** Another error reading a file or {@code ..data} (permissions, I/O). */
        IO("io"),
        /** The generation changed on each of 5 attempts. */
        UNSTABLE("unstable");

        private final String wireName;

        Kind(String wireName) {
            this.wireName = wireName;
        }

        /** The class as docs/wire.md and the fixtures spell it. */
        public String wireName() {
            return wireName;
        }
    }

    private final Kind kind;
    private final transient Path file;

    VolumeException(Kind kind, Path file, String reason) {
        super(file + ": " + reason);
        this.kind = kind;
        this.file = file;
    }

    VolumeException(Path file, IOException cause) {
        // The cause's own message names the path (and the errno), never content.
        super(file + ": cannot be read (" + cause.getClass().getSimpleName() + ")", cause);
        this.kind = Kind.IO;
        this.file = file;
    }

    public Kind kind() {
        return kind;
    }

    /** The error class as docs/wire.md spells it: {@code missing}, {@code malformed}, {@code io}, {@code unstable}. */
    public String errorClass() {
        return kind.wireName();
    }

    /** The file (or directory) the error is about. */
    public Path file() {
        return file;
    }
}
