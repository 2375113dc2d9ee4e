package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.Wire;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The library's side of the handshake directory (docs/wire.md#the-handshake-directory): it
 * tells the reporter sidecar what this process loaded, in {@code <rotation>.<role>-revision}
 * and {@code <rotation>.last-seen}. Files are written atomically (a dot-prefixed temporary
 * file renamed over the name), only when their content changes. A failed write is logged
 * (class and path) and retried on the next poll; nothing else is ever claimed instead.
 */
final class Handshake {
    /** The roles whose revision a library confirms. */
    private static final List<String> ROLES = List.of(Wire.ROLE_VERIFIER, Wire.ROLE_PRESENTER);
    private static final AtomicLong TEMPORARY = new AtomicLong();

    private final Path dir;
    /** File name to the content last written successfully. */
    private final Map<String, String> written = new HashMap<>();
    /** File name to the last failure logged, so a failing write logs once, not every poll. */
    private final Map<String, String> failures = new HashMap<>();

    Handshake(Path dir) {
        this.dir = dir;
    }

    Path dir() {
        return dir;
    }

    /** At start, before the first load: files a stopped process left speak for it only. */
    synchronized void forget(Snapshot.Meta meta, boolean lastSeen) {
        if (!safeName(meta.rotation())) {
            return;
        }
        for (String role : ROLES) {
            if (meta.hasRole(role)) {
                delete(Wire.handshakeRevisionFile(meta.rotation(), role));
            }
        }
        if (lastSeen) {
            delete(Wire.handshakeLastSeenFile(meta.rotation()));
        }
    }

    /** After the process switched to {@code snapshot}: its revision, under each role it serves. */
    synchronized void loaded(Snapshot snapshot) {
        if (!safeName(snapshot.rotation())) {
            return;
        }
        for (String role : ROLES) {
            if (snapshot.hasRole(role)) {
                write(Wire.handshakeRevisionFile(snapshot.rotation(), role), Numbers.format(snapshot.revision()));
            }
        }
    }

    /** A last-seen value in its written form. */
    synchronized void lastSeen(String rotation, String value) {
        if (safeName(rotation)) {
            write(Wire.handshakeLastSeenFile(rotation), value);
        }
    }

    private void delete(String name) {
        Path file = dir.resolve(name);
        try {
            Files.deleteIfExists(file);
            written.remove(name);
        } catch (IOException e) {
            Mounted.LOG.log(Level.WARNING, () -> "keyrotor: cannot remove handshake file " + file
                    + " (io: " + e.getClass().getSimpleName() + ")");
        }
    }

    private void write(String name, String content) {
        if (content.equals(written.get(name))) {
            return;
        }
        Path file = dir.resolve(name);
        Path temporary = dir.resolve("." + name + ".tmp-" + ProcessHandle.current().pid()
                + "-" + TEMPORARY.incrementAndGet());
        try {
            Files.write(temporary, content.getBytes(StandardCharsets.UTF_8));
            Files.move(temporary, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            written.put(name, content);
            if (failures.remove(name) != null) {
                Mounted.LOG.log(Level.INFO, () -> "keyrotor: wrote handshake file " + file + " again");
            }
        } catch (IOException e) {
            try {
                Files.deleteIfExists(temporary);
            } catch (IOException ignored) {
                // The directory is failing already; the next write tries again.
            }
            String failure = e.getClass().getSimpleName();
            if (!failure.equals(failures.put(name, failure))) {
                Mounted.LOG.log(Level.WARNING, () -> "keyrotor: cannot write handshake file " + file
                        + " (io: " + failure + "); the sidecar reports nothing new until it can");
            }
        }
    }

    /**
     * Whether a rotation name can name a file here: a Kubernetes object name is; anything
     * with a slash, a leading dot or other characters is refused (the volume may be hostile).
     */
    private boolean safeName(String rotation) {
        boolean safe = !rotation.isEmpty() && rotation.length() <= 253 && rotation.charAt(0) != '.'
                && rotation.chars().allMatch(c -> c < 0x80 && (Character.isLetterOrDigit(c) || c == '.' || c == '-' || c == '_'));
        if (!safe && failures.put("rotation", rotation) == null) {
            Mounted.LOG.log(Level.WARNING,
                    () -> "keyrotor: the rotation name cannot name a handshake file; nothing is written to " + dir);
        }
        return safe;
    }
}
