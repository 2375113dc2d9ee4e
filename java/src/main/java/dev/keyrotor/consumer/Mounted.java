package dev.keyrotor.consumer;

import dev.keyrotor.consumer.wire.Numbers;
import dev.keyrotor.consumer.wire.Wire;
import java.lang.System.Logger.Level;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.ScheduledFuture;

/**
 * What a verifier and a presenter share: a mounted directory, its latest good snapshot, the
 * reload that follows kubelet's swaps, and the handshake that confirms each load.
 *
 * <p>Order of a reload: load the new generation whole, let the process switch to it
 * ({@link #publish}), and only then write its revision to the handshake directory. A failed
 * reload keeps the loaded snapshot and is logged by class and file, once per distinct error.
 */
abstract class Mounted implements AutoCloseable {
    static final System.Logger LOG = System.getLogger("dev.keyrotor.consumer");

    private final Path dir;
    private final String role;
    private final Handshake handshake;
    private final Object reloadLock = new Object();
    private final List<ScheduledFuture<?>> tasks = new ArrayList<>();
    private String lastFailure;

    Mounted(Path dir, String role, Optional<Path> handshakeDir) {
        this.dir = dir;
        this.role = role;
        this.handshake = handshakeDir.map(Handshake::of).orElse(null);
    }

    /** Makes {@code next} the snapshot the process uses. */
    abstract void publish(Snapshot next);

    /** The snapshot the process uses now. */
    public abstract Snapshot snapshot();

    /**
     * The first load: the handshake files of this rotation and role are removed before it,
     * and written after it. Then polling starts.
     */
    final void start(Options options, boolean lastSeen) throws VolumeException {
        if (handshake != null) {
            handshake.forget(Snapshot.Meta.load(dir), lastSeen);
        }
        Snapshot first = load();
        synchronized (reloadLock) {
            publish(first);
            confirm(first);
        }
        if (!options.pollInterval().isZero()) {
            schedule(options.pollInterval(), this::poll);
        }
    }

    final void schedule(Duration period, Runnable task) {
        synchronized (tasks) {
            tasks.add(Poller.every(period, task));
        }
    }

    private Snapshot load() throws VolumeException {
        Snapshot next = Snapshot.load(dir);
        if (!next.hasRole(role)) {
            Path roleFile = next.generation().map(dir::resolve).orElse(dir).resolve(Wire.ROLE_FILE);
            throw new VolumeException(VolumeException.Kind.MALFORMED, roleFile, "does not name " + role);
        }
        return next;
    }

    /**
     * Reloads when the volume changed: one {@code readlink} when it did not (a plain
     * directory is read and compared). Returns whether the process now uses a new snapshot.
     * On failure the loaded snapshot stays in use.
     */
    public final boolean refresh() throws VolumeException {
        synchronized (reloadLock) {
            Snapshot old = snapshot();
            Optional<String> now = Volume.generation(dir);
            if (now.isPresent() && now.equals(old.generation())) {
                confirm(old);
                return false;
            }
            Snapshot next = load();
            if (next.generation().isEmpty() && old.generation().isEmpty() && next.sameContent(old)) {
                confirm(old);
                return false;
            }
            publish(next);
            confirm(next);
            return true;
        }
    }

    /** Writes the revision of what the process uses (retrying a write that failed before). */
    private void confirm(Snapshot used) {
        if (handshake != null) {
            handshake.loaded(this, used);
        }
    }

    private void poll() {
        try {
            refresh();
            if (lastFailure != null) {
                lastFailure = null;
                LOG.log(Level.INFO, () -> "keyrotor: " + dir + " reads again, revision "
                        + Numbers.format(snapshot().revision()));
            }
        } catch (VolumeException e) {
            String failure = e.getMessage();
            if (!failure.equals(lastFailure)) {
                lastFailure = failure;
                LOG.log(Level.WARNING, () -> "keyrotor: reloading " + dir + " failed (" + e.errorClass()
                        + "): " + failure + "; still using revision " + Numbers.format(snapshot().revision()));
            }
        }
    }

    final Handshake handshake() {
        return handshake;
    }

    /** The mounted directory. */
    public final Path dir() {
        return dir;
    }

    /**
     * Stops polling and withdraws this instance's claims from the handshake (the files then
     * say what the process's other verifiers and presenters hold). The last snapshot stays usable.
     */
    @Override
    public void close() {
        synchronized (tasks) {
            tasks.forEach(t -> t.cancel(false));
            tasks.clear();
        }
        if (handshake != null) {
            handshake.release(this);
        }
    }
}
