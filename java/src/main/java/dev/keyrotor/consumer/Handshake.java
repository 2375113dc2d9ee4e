package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.LastSeen;
import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.Wire;
import java.io.IOException;
import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The library's side of the handshake directory (docs/wire.md#the-handshake-directory): it
 * tells the reporter sidecar what this process loaded, in {@code <rotation>.<role>-revision}
 * and {@code <rotation>.last-seen}.
 *
 * <p>One instance per directory and process, shared by every verifier and presenter of the
 * process: when several of them serve one rotation and role (a combined Secret opened as
 * both, or several mounts), the file says the lowest revision any of them holds, so it never
 * claims more than the whole process loaded; last-seen merges their times. Files are
 * written atomically (a dot-prefixed temporary file renamed over the name), only when their
 * content changes. A failed write is logged (class and path) once and retried on the next
 * poll; nothing else is ever claimed instead.
 */
final class Handshake {
    /** The roles whose revision a library confirms. */
    private static final List<String> ROLES = List.of(Wire.ROLE_VERIFIER, Wire.ROLE_PRESENTER);
    private static final Map<Path, Handshake> BY_DIR = new ConcurrentHashMap<>();
    private static final AtomicLong TEMPORARY = new AtomicLong();

    private final Path dir;
    /** Revision file name to what each verifier or presenter of this process holds. */
    private final Map<String, Map<Object, Long>> revisions = new HashMap<>();
    /** Last-seen file name to what each verifier of this process saw. */
    private final Map<String, Map<Object, LastSeen>> seen = new HashMap<>();
    /** File name to the content last written successfully. */
    private final Map<String, String> written = new HashMap<>();
    /** File name to the last failure logged, so a failing write logs once, not every poll. */
    private final Map<String, String> failures = new HashMap<>();

    private Handshake(Path dir) {
        this.dir = dir;
    }

    /** The process's handshake of {@code dir}. */
    static Handshake of(Path dir) {
        return BY_DIR.computeIfAbsent(dir.toAbsolutePath().normalize(), Handshake::new);
    }

    /**
     * At start, before the first load: files a stopped process left speak for it only. Files
     * that another verifier or presenter of this process claims stay.
     */
    synchronized void forget(Snapshot.Meta meta, boolean lastSeen) {
        if (!safeName(meta.rotation())) {
            return;
        }
        for (String role : ROLES) {
            String name = Wire.handshakeRevisionFile(meta.rotation(), role);
            if (meta.hasRole(role) && revisions.getOrDefault(name, Map.of()).isEmpty()) {
                delete(name);
            }
        }
        String name = Wire.handshakeLastSeenFile(meta.rotation());
        if (lastSeen && seen.getOrDefault(name, Map.of()).isEmpty()) {
            delete(name);
        }
    }

    /** After {@code claimant}'s process switched to {@code snapshot}: its revision, under each role. */
    synchronized void loaded(Object claimant, Snapshot snapshot) {
        Set<String> touched = drop(revisions, claimant);
        if (safeName(snapshot.rotation())) {
            for (String role : ROLES) {
                if (snapshot.hasRole(role)) {
                    String name = Wire.handshakeRevisionFile(snapshot.rotation(), role);
                    revisions.computeIfAbsent(name, n -> new HashMap<>()).put(claimant, snapshot.revision());
                    touched.add(name);
                }
            }
        }
        touched.forEach(this::writeRevision);
    }

    /** What {@code claimant} saw presented, merged with the others' (the latest time per version). */
    synchronized void lastSeen(Object claimant, String rotation, LastSeen value) {
        if (!safeName(rotation) || value.seen().isEmpty()) {
            return;
        }
        String name = Wire.handshakeLastSeenFile(rotation);
        seen.computeIfAbsent(name, n -> new HashMap<>()).put(claimant, value);
        TreeMap<Long, Instant> merged = new TreeMap<>(Numbers.ORDER);
        for (LastSeen s : seen.get(name).values()) {
            s.seen().forEach((v, t) -> merged.merge(v, t, (a, b) -> a.isAfter(b) ? a : b));
        }
        while (merged.size() > LastSeen.MAX_ENTRIES) {
            merged.pollFirstEntry();
        }
        write(name, new LastSeen(merged).format());
    }

    /** {@code claimant} closed: the files say what the others hold (a file nobody claims stays). */
    synchronized void release(Object claimant) {
        drop(revisions, claimant).forEach(this::writeRevision);
        drop(seen, claimant);
    }

    private static <V> Set<String> drop(Map<String, Map<Object, V>> claims, Object claimant) {
        Set<String> names = new HashSet<>();
        claims.forEach((name, byClaimant) -> {
            if (byClaimant.remove(claimant) != null) {
                names.add(name);
            }
        });
        return names;
    }

    /** The lowest revision any claimant holds: never more than the whole process loaded. */
    private void writeRevision(String name) {
        revisions.getOrDefault(name, Map.of()).values().stream().min(Numbers.ORDER)
                .ifPresent(lowest -> write(name, Numbers.format(lowest)));
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
     * Whether a rotation name can name a file here: a Kubernetes object name can; a name
     * with a slash, a leading dot or other characters is refused (the volume may be hostile).
     */
    private boolean safeName(String rotation) {
        boolean safe = !rotation.isEmpty() && rotation.length() <= 253 && rotation.charAt(0) != '.'
                && rotation.chars().allMatch(c -> c < 0x80
                        && (Character.isLetterOrDigit(c) || c == '.' || c == '-' || c == '_'));
        if (!safe && !rotation.equals(failures.put("rotation", rotation))) {
            Mounted.LOG.log(Level.WARNING, () -> "keyrotor: the rotation name cannot name a handshake file;"
                    + " nothing is written to " + dir);
        }
        return safe;
    }
}
